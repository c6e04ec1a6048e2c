"""Training photos: folders and zips, captions, the refusals, face crops for people and centre crops otherwise."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from engine.train.crops import box_in_crop, centre_square, face_square, mirror_box
from engine.train.photos import prepare_photos, read_photos
from engine.train.request import TrainRequest, check_name, check_request, default_steps


def noise(seed: int, size=(80, 60)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def write(folder, images: dict, texts: dict | None = None):
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in images.items():
        image.save(folder / name)
    for name, text in (texts or {}).items():
        (folder / name).write_text(text)
    return folder


def faces(astronaut, count=3):
    """The astronaut photo, a little brighter each time: different pixels, the same face."""
    return {f"a{i}.png": ImageEnhance.Brightness(astronaut).enhance(1 + 0.05 * i) for i in range(count)}


# pure maths
def test_centre_square_is_the_middle():
    assert centre_square(100, 60) == (20, 0, 80, 60)
    assert centre_square(40, 90) == (0, 25, 40, 65)


def test_face_square_pads_the_face_and_stays_in_the_photo():
    assert face_square((40, 40, 60, 60), 200, 200) == (20, 20, 80, 80)
    assert face_square((0, 0, 20, 20), 200, 200) == (0, 0, 60, 60)  # pushed inside at the corner
    assert face_square((10, 10, 90, 90), 100, 50) == (25, 0, 75, 50)  # too big: the shorter side


def test_box_in_crop_scales_and_mirror_flips():
    assert box_in_crop((40, 40, 60, 60), (20, 20, 80, 80), 30) == (10, 10, 20, 20)
    assert mirror_box((10, 5, 20, 25), 30) == (10, 5, 20, 25)
    assert mirror_box((0, 5, 10, 25), 30) == (20, 5, 30, 25)


# reading
def test_folder_and_zip_give_the_same_photos_with_captions(tmp_path):
    images = {f"p{i}.png": noise(i) for i in range(3)}
    folder = write(tmp_path / "in", images, {"p1.txt": "red hat\n"})
    archive = tmp_path / "in.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in folder.iterdir():
            z.write(p, f"photos/{p.name}")
        z.writestr("__MACOSX/._p0.png", b"junk")
    for source in (folder, archive):
        got = read_photos(source)
        assert [n for n, _, _ in got] == ["p0.png", "p1.png", "p2.png"]
        assert [c for _, _, c in got] == ["", "red hat", ""]
        assert np.array_equal(np.asarray(got[2][1]), np.asarray(images["p2.png"]))


def test_too_few_photos_are_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 3 photos"):
        read_photos(write(tmp_path, {"a.png": noise(0), "b.png": noise(1)}))


def test_non_images_are_named(tmp_path):
    folder = write(tmp_path, {f"{i}.png": noise(i) for i in range(3)}, {"notes.pdf": "x"})
    with pytest.raises(ValueError, match=r"notes\.pdf is not an image"):
        read_photos(folder)
    (tmp_path / "notes.pdf").unlink()
    (tmp_path / "fake.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match=r"fake\.jpg is not an image"):
        read_photos(folder)


def test_duplicates_are_found_by_pixels_not_names(tmp_path):
    photo = noise(0)
    folder = write(tmp_path, {"a.png": photo, "b.png": noise(1), "c.png": noise(2)})
    photo.save(tmp_path / "copy.webp", lossless=True)
    with pytest.raises(ValueError, match=r"copy\.webp is the same picture as a\.png"):
        read_photos(folder)


# preparing
def test_objects_are_centre_cropped_at_the_training_size(tmp_path):
    images = {f"p{i}.png": noise(i, (80, 60)) for i in range(3)}
    result = prepare_photos(write(tmp_path, images), "object", 48)
    assert [p.image.size for p in result.photos] == [(48, 48)] * 3
    assert all(p.face_box is None and not p.small for p in result.photos)
    expected = images["p0.png"].crop((10, 0, 70, 60)).resize((48, 48), Image.Resampling.LANCZOS)
    assert np.array_equal(np.asarray(result.photos[0].image), np.asarray(expected))
    small = prepare_photos(tmp_path, "object", 64)
    assert all(p.small for p in small.photos) and "smaller than the training size 64 px" in small.notes[0]


def test_people_are_cropped_around_the_face_and_faceless_photos_listed(tmp_path, astronaut):
    from engine.faces.detect import detect_faces

    folder = write(tmp_path, {**faces(astronaut), "wall.png": noise(9, (300, 300))})
    result = prepare_photos(folder, "woman", 64)
    assert [p.name for p in result.photos] == ["a0.png", "a1.png", "a2.png"]
    assert result.no_face == ["wall.png"] and "No face was found in wall.png" in result.notes[0]
    face = detect_faces(astronaut)[0]
    crop = face_square(face.box, *astronaut.size)
    assert result.photos[0].face_box == box_in_crop(face.box, crop, 64)
    left, top, right, bottom = result.photos[0].face_box
    assert 15 <= right - left <= 30 and 15 <= bottom - top <= 30  # the face is about a third of the crop
    flipped = result.photos[0].mirrored()
    assert flipped.face_box == mirror_box(result.photos[0].face_box, 64)
    assert np.array_equal(np.asarray(flipped.image)[:, ::-1], np.asarray(result.photos[0].image))


def test_too_few_faces_left_is_refused(tmp_path, astronaut):
    folder = write(tmp_path, {**faces(astronaut, 2), "wall.png": noise(9, (300, 300))})
    with pytest.raises(ValueError, match="Only 2 photos with a face are left"):
        prepare_photos(folder, "person", 64)


# the request
def test_names_with_path_characters_or_taken_are_refused(tmp_path):
    for bad in ("../x", "a/b", "c:\\d", "x..y"):
        with pytest.raises(ValueError, match="path characters"):
            check_name(bad, tmp_path)
    with pytest.raises(ValueError, match="letters, digits"):
        check_name("two words", tmp_path)
    (tmp_path / "Alice.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="already exists"):
        check_name("alice", tmp_path)
    assert check_name("alice", tmp_path, overwrite=True) == "alice"


def test_default_steps_and_request_checks():
    assert [default_steps(n) for n in (3, 8, 20)] == [400, 800, 1500]
    with pytest.raises(ValueError, match="multiple of 8"):
        check_request(TrainRequest("x", "sks", resolution=60))
    with pytest.raises(ValueError, match="face-weighted loss needs a person"):
        check_request(TrainRequest("x", "sks", class_word="dog", face_weighted=True))
