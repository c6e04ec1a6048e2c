"""engine.faces: offline face detection, the face to work on, and a region and mask that leave the rest untouched."""

import importlib.util
import sys

import numpy as np
import pytest
from PIL import Image

from engine.faces import (
    MIN_FACE,
    NO_FACE,
    SAME_PERSON,
    Face,
    detect_faces,
    draw_faces,
    face_mask,
    face_region,
    identity_distance,
    pick_face,
    usable,
)
from engine.image.masks import paste_back

ASTRONAUT_FACE = (165, 55, 280, 195)  # generous (left, top, right, bottom) around her face in the 512x512 photo


def inside(box, outer) -> bool:
    return outer[0] <= box[0] and outer[1] <= box[1] and box[2] <= outer[2] and box[3] <= outer[3]


@pytest.fixture(scope="module")
def found(astronaut):
    return detect_faces(astronaut)


@pytest.fixture(scope="module")
def pair(astronaut):
    """The astronaut at full size and, to her right, at 3/4 size: two faces of different sizes."""
    right = np.zeros((512, 384, 3), np.uint8)
    right[:384] = np.asarray(astronaut.resize((384, 384), Image.Resampling.LANCZOS))
    return Image.fromarray(np.concatenate([np.asarray(astronaut), right], axis=1))


# --- detect_faces and pick_face -------------------------------------------------------------


def test_finds_the_astronaut_face_where_it_is(found):
    assert len(found) == 1
    face = found[0]
    assert inside(face.box, ASTRONAUT_FACE)
    assert 80 <= face.width <= 115 and abs(face.width - face.height) <= 2
    assert face.area == face.width * face.height and face.score > 0
    assert usable(face)
    assert pick_face(found) == (face, None)


def test_detection_is_deterministic(astronaut, found):
    assert detect_faces(astronaut) == found


def test_large_photos_are_searched_shrunk_and_boxes_map_back(astronaut, found):
    faces = detect_faces(astronaut.resize((1536, 1536), Image.Resampling.LANCZOS))
    assert len(faces) == 1
    expected = np.array(found[0].box) * 3
    np.testing.assert_allclose(faces[0].box, expected, atol=15)


@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_no_face_gives_the_no_face_sentence(kind):
    rng = np.random.default_rng(0)
    pixels = np.full((512, 512, 3), 128, np.uint8) if kind == "blank" else rng.integers(0, 256, (512, 512, 3), np.uint8)
    faces = detect_faces(Image.fromarray(pixels))
    assert faces == []
    with pytest.raises(ValueError) as error:
        pick_face(faces)
    assert str(error.value) == NO_FACE
    assert "No face was found" in NO_FACE and "whole photo" in NO_FACE


def test_two_faces_largest_first_and_the_note_says_which(pair):
    faces = detect_faces(pair)
    assert len(faces) == 2
    left, right = faces
    assert left.area > right.area
    assert left.box[2] <= 512 <= right.box[0]
    assert pick_face(faces) == (left, "2 faces were found; face 1 (the largest) was used.")
    assert pick_face(faces, 1) == (right, "2 faces were found; face 2 was used.")
    with pytest.raises(ValueError, match="Face 3 was asked for but only 2 faces were found; pick a face from 1 to 2"):
        pick_face(faces, 2)
    with pytest.raises(ValueError, match="0 or more"):
        pick_face(faces, -1)


def test_a_face_under_the_minimum_is_found_but_refused(astronaut):
    faces = detect_faces(astronaut.resize((256, 256), Image.Resampling.LANCZOS))
    assert len(faces) == 1
    face = faces[0]
    side = min(face.width, face.height)
    assert side < MIN_FACE and not usable(face)
    with pytest.raises(ValueError, match=rf"The face is only {side} pixels across, below the {MIN_FACE}-pixel minimum"):
        pick_face(faces)


def test_choosing_a_small_face_among_larger_ones_says_to_pick_another():
    faces = [Face(0, 0, 100, 100, 50.0), Face(200, 0, 40, 40, 20.0)]
    with pytest.raises(ValueError, match="Face 2 is only 40 pixels.*pick a larger face"):
        pick_face(faces, 1)


# --- face_region ----------------------------------------------------------------------------


@pytest.mark.parametrize("padding", [0, 0.25, 0.5, 1, 2])
@pytest.mark.parametrize(
    "face, size",
    [
        (Face(176, 66, 96, 96, 1.0), (512, 512)),  # the astronaut
        (Face(0, 0, 90, 90, 1.0), (512, 512)),  # top-left corner
        (Face(420, 400, 92, 100, 1.0), (512, 500)),  # bottom-right corner, not quite square
        (Face(300, 20, 100, 100, 1.0), (1000, 150)),  # wide strip: the square must shrink
        (Face(10, 500, 70, 70, 1.0), (90, 900)),  # tall strip
    ],
)
def test_face_region_is_a_square_around_the_face_inside_the_image(face, size, padding):
    left, top, right, bottom = region = face_region(face, size, padding)
    assert right - left == bottom - top
    assert 0 <= left and 0 <= top and right <= size[0] and bottom <= size[1]
    assert inside(face.box, region)


def test_face_region_grows_with_padding_and_leaves_more_room_above(found):
    face = found[0]
    regions = [face_region(face, (512, 512), padding) for padding in (0.25, 0.5, 1.0)]
    sides = [right - left for left, _, right, _ in regions]
    assert sides == sorted(sides) and len(set(sides)) == 3
    left, top, right, bottom = regions[1]
    assert face.y - top > bottom - (face.y + face.height)
    assert right - left == round(max(face.width, face.height) * 2)


@pytest.mark.parametrize("padding", [-0.1, 2.5, float("nan"), "0.5", True])
def test_face_region_rejects_bad_padding(padding):
    with pytest.raises(ValueError, match="padding between 0 and 2"):
        face_region(Face(100, 100, 80, 80, 1.0), (512, 512), padding)


def test_a_face_from_another_image_is_refused():
    with pytest.raises(ValueError, match="outside the 100x100 image"):
        face_region(Face(176, 66, 96, 96, 1.0), (100, 100))


# --- face_mask ------------------------------------------------------------------------------


def check_mask(face, size, region, feather=None):
    mask = face_mask(face, size, region, feather)
    assert mask.mode == "L" and mask.size == size
    values = np.asarray(mask)
    left, top, right, bottom = region
    outside = np.ones_like(values, bool)
    outside[top:bottom, left:right] = False
    assert values[outside].max(initial=0) == 0
    assert values[face.y + face.height // 2, face.x + face.width // 2] == 255
    return values


@pytest.mark.parametrize("feather", [None, 0, 3])
def test_face_mask_covers_face_and_hair_and_is_zero_outside_the_region(found, feather):
    face = found[0]
    region = face_region(face, (512, 512))
    values = check_mask(face, (512, 512), region, feather)
    assert values[35, 224] > 128  # hair above the forehead
    assert values[185, 224] > 128  # chin and a little neck
    assert values[region[3] - 1, region[0]] == 0  # a corner of the square stays as it was


def test_a_wide_feather_shrinks_the_ellipse_to_fade_out_inside_the_region(found):
    face = found[0]
    region = face_region(face, (512, 512))
    sharp, soft = (check_mask(face, (512, 512), region, feather) for feather in (2, 12))
    assert (soft == 255).sum() < (sharp == 255).sum()


@pytest.mark.parametrize(
    "face, size",
    [(Face(0, 0, 90, 90, 1.0), (512, 512)), (Face(300, 20, 100, 100, 1.0), (1000, 150))],
)
def test_face_mask_stays_inside_a_shifted_or_shrunk_region(face, size):
    region = face_region(face, size)
    values = check_mask(face, size, region)
    inner_edge = values[:, region[0]] if region[0] > 0 else values[:, region[2] - 1]
    assert inner_edge.max() <= 1  # the feather fades out before the region's inner edge


def test_face_mask_refuses_a_feather_wider_than_the_region(found):
    face = found[0]
    region = face_region(face, (512, 512))
    with pytest.raises(ValueError, match="too wide for this region; use at most"):
        face_mask(face, (512, 512), region, feather=200)


def test_face_mask_refuses_a_region_that_is_not_a_square(found):
    with pytest.raises(ValueError, match="not a square inside the 512x512 image"):
        face_mask(found[0], (512, 512), (100, 0, 300, 250))


def test_full_flow_changes_nothing_where_the_mask_is_zero(astronaut):
    face, note = pick_face(detect_faces(astronaut))
    region = face_region(face, astronaut.size)
    mask = face_mask(face, astronaut.size, region)
    generated = Image.fromarray(255 - np.asarray(astronaut.crop(region).resize((512, 512))))  # a stand-in repaint

    result = np.asarray(paste_back(astronaut, generated, region, mask)).astype(int)

    original = np.asarray(astronaut).astype(int)
    zero = np.asarray(mask) == 0
    np.testing.assert_array_equal(result[zero], original[zero])
    centre = face.y + face.height // 2, face.x + face.width // 2
    assert np.abs(result[centre] - original[centre]).max() > 20
    assert note is None


# --- draw_faces -----------------------------------------------------------------------------


def test_draw_faces_marks_each_face_and_highlights_the_chosen_one(pair):
    faces = detect_faces(pair)
    before = np.asarray(pair).copy()
    preview = draw_faces(pair, faces, chosen=1)
    assert preview.size == pair.size and preview.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(pair), before)  # the input is not drawn on
    pixels = np.asarray(preview)
    (x0, y0, _, y1), (x1, _, _, y2) = faces[0].box, faces[1].box
    assert tuple(pixels[(y0 + y1) // 2, x0]) == (255, 210, 0)
    assert tuple(pixels[(faces[1].box[1] + y2) // 2, x1]) == (0, 230, 64)
    with pytest.raises(ValueError, match="from 1 to 2"):
        draw_faces(pair, faces, chosen=2)


def test_draw_faces_without_faces_returns_a_copy(astronaut):
    np.testing.assert_array_equal(np.asarray(draw_faces(astronaut, [])), np.asarray(astronaut))


# --- identity_distance (optional dlib) ------------------------------------------------------


def test_identity_distance_is_none_without_dlib(astronaut, monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # makes `import dlib` fail
    assert identity_distance(astronaut, astronaut) is None


@pytest.fixture
def with_dlib():
    pytest.importorskip("dlib")
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("needs face-recognition-models: pip install dlib-bin face-recognition-models")


@pytest.mark.usefixtures("with_dlib")
def test_identity_distance_says_same_person(astronaut):
    assert identity_distance(astronaut, astronaut) == pytest.approx(0.0, abs=1e-6)
    mirrored = astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert identity_distance(astronaut, mirrored) < SAME_PERSON


@pytest.mark.usefixtures("with_dlib")
def test_identity_distance_is_none_when_an_image_has_no_face(astronaut):
    assert identity_distance(astronaut, Image.new("RGB", (200, 200), "grey")) is None
    assert identity_distance(Image.new("RGB", (200, 200), "grey"), astronaut) is None
