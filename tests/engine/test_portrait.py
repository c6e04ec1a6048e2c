"""engine.faces.portrait: every face of a group photo, the saved file kept byte for byte outside the masks, step
progress, and the identity distance read on the edited face itself."""
import importlib.util

import numpy as np
import pytest
from PIL import Image

from engine import faces, provenance
from engine.faces import Face, face_identity_distance
from engine.faces.aging import AgingRequest, aging_timelapse
from engine.faces.gender import GenderRequest, gender_swap
from engine.faces.portrait import (
    NO_FACE_IN_RESULT,
    FacePart,
    _merge_overlapping,
    find_face_area,
    identity_note,
    mark_box,
)
from engine.files import pnginfo
from engine.image.masks import paste_back

FAST = dict(num_inference_steps=3, size=64, sampler="Euler", seed=4)


def arr(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def group(astronaut):
    """Four copies of the bundled portrait on one 1024x1024 canvas: a synthetic group photo."""
    canvas = Image.new("RGB", (1024, 1024))
    for x in (0, 512):
        for y in (0, 512):
            canvas.paste(astronaut, (x, y))
    return canvas


@pytest.fixture
def with_dlib():
    pytest.importorskip("dlib")
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("needs face-recognition-models: pip install dlib-bin face-recognition-models")


# --- all faces ----------------------------------------------------------------------------------


def test_all_faces_finds_a_region_per_face_and_one_union_mask(group):
    area = find_face_area(group, all_faces=True)
    assert len(area.found) == 4 and len(area.parts) == 4
    assert sorted(n for p in area.parts for n in p.numbers) == [1, 2, 3, 4]
    assert area.note == "All 4 faces were regenerated."
    union = np.asarray(area.mask)
    for part in area.parts:
        assert np.array_equal(np.maximum(union, np.asarray(part.mask)), union)  # each mask is inside the union
    assert (union > 0).sum() == sum((np.asarray(p.mask) > 0).sum() for p in area.parts)  # and none overlap


def test_all_faces_regenerates_everyone_and_keeps_the_rest(tiny_manager, group):
    steps = []
    req = GenderRequest(direction="woman", variants=1, all_faces=True, **FAST)
    result = gender_swap(tiny_manager, req, group, on_step=steps.append)
    area = find_face_area(group, all_faces=True)
    image = result.variants[0].image
    outside = np.asarray(area.mask) == 0
    assert np.array_equal(arr(image)[outside], arr(group)[outside])
    for part in area.parts:  # every face changed inside its own mask
        inside = np.asarray(part.mask) == 255
        assert not np.array_equal(arr(image)[inside], arr(group)[inside])
    assert "All 4 faces were regenerated." in result.notes
    assert "Faces: all" in result.variants[0].parameters
    # progress: every step of every face, from the first step of the first face
    assert {s.faces for s in steps} == {4} and [s.face for s in steps if s.step == 1] == [1, 2, 3, 4]
    assert steps[0].step == 1 and steps[0].fraction > 0 and steps[-1].fraction == 1.0
    assert steps[0].label == "variant 1" and steps[0].face_label == "face 1"
    assert (steps[0].num_inference_steps, steps[0].strength) == (req.num_inference_steps, req.strength)
    # the same settings for each face: face 2 alone comes out as face 2 among all
    alone = gender_swap(tiny_manager, GenderRequest(direction="woman", variants=1, face_index=1, **FAST), group)
    second = np.asarray(area.parts[1].mask) > 0
    assert np.array_equal(arr(alone.variants[0].image)[second], arr(image)[second])


def test_aging_progress_counts_faces_times_ages(tiny_manager, astronaut, tmp_path):
    pair = Image.new("RGB", (1024, 512))
    pair.paste(astronaut, (0, 0))
    pair.paste(astronaut, (512, 0))
    steps = []
    req = AgingRequest(ages=[20, 50], transition_frames=0, all_faces=True, strength=0.6, fps=4, **FAST)
    aging_timelapse(tiny_manager, req, pair, tmp_path, on_step=steps.append)
    firsts = [(s.index, s.total, s.label, s.face, s.faces) for s in steps if s.step == 1]
    assert firsts == [(1, 2, "age 20", 1, 2), (1, 2, "age 20", 2, 2), (2, 2, "age 50", 1, 2), (2, 2, "age 50", 2, 2)]
    assert all(s.total_steps == steps[0].total_steps for s in steps) and steps[-1].fraction == 1.0
    assert (steps[0].num_inference_steps, steps[0].strength) == (req.num_inference_steps, 0.6)  # the run's schedule
    outside = np.asarray(find_face_area(pair, all_faces=True).mask) == 0
    saved = Image.open(tmp_path / "age_050.png")
    assert np.array_equal(arr(saved)[outside], arr(pair)[outside])


def test_overlapping_faces_are_merged_into_one_region():
    size = (600, 400)
    close = [Face(150, 150, 100, 100, 30.0), Face(260, 150, 100, 100, 30.0), Face(480, 20, 80, 80, 30.0)]
    parts = []
    for number, face in enumerate(close, 1):
        region = faces.face_region(face, size)
        parts.append(FacePart([number], region, faces.face_mask(face, size, region), [face]))
    merged, labels = _merge_overlapping(parts, size)
    assert [p.numbers for p in merged] == [[1, 2], [3]] and labels == ["Faces 1 and 2"]
    left, top, right, bottom = merged[0].region
    assert right - left == bottom - top and 0 <= left and right <= 600 and bottom <= 400
    for part in parts[:2]:  # the merged mask holds both faces' masks
        assert (np.asarray(merged[0].mask) >= np.asarray(part.mask)).all()


def test_overlapping_faces_too_large_together_are_refused():
    size = (400, 220)
    pair = [Face(40, 40, 100, 100, 30.0), Face(150, 40, 100, 100, 30.0)]
    parts = []
    for number, face in enumerate(pair, 1):
        region = faces.face_region(face, size)
        parts.append(FacePart([number], region, faces.face_mask(face, size, region), [face]))
    with pytest.raises(ValueError, match="Face 1 and face 2 overlap and together do not fit"):
        _merge_overlapping(parts, size)


def test_all_faces_without_a_usable_face_says_so():
    with pytest.raises(ValueError, match="No face was found"):
        find_face_area(Image.new("RGB", (128, 128), "grey"), all_faces=True)


# --- the saved file ------------------------------------------------------------------------------


@pytest.mark.parametrize("side", [512, 1024])
def test_saved_png_equals_the_input_outside_the_mask_and_carries_the_mark(tiny_manager, astronaut, tmp_path, side):
    photo = astronaut.resize((side, side), Image.Resampling.LANCZOS)
    variant = gender_swap(tiny_manager, GenderRequest(direction="man", variants=1, **FAST), photo).variants[0]
    path = pnginfo.save_png(variant.image, tmp_path / "swap.png", variant.parameters)
    area = find_face_area(photo)
    outside = np.asarray(area.mask) == 0
    saved = Image.open(path)
    assert np.array_equal(arr(saved)[outside], arr(photo)[outside])  # every pixel outside the mask
    assert saved.text[provenance.REGIONS_KEY] == provenance.format_regions([mark_box(area.region, photo.size)])
    assert provenance.has_watermark(saved)


def test_the_mark_box_widens_small_regions_inside_the_photo():
    assert mark_box((128, 8, 320, 200), (512, 512)) == (64, 0, 384, 320)
    assert mark_box((0, 0, 400, 400), (1024, 1024)) == (0, 0, 400, 400)
    assert mark_box((10, 10, 100, 100), (200, 300)) == (0, 0, 200, 300)


def test_a_whole_photo_result_keeps_the_whole_image_mark(tiny_manager, astronaut, tmp_path):
    variant = gender_swap(tiny_manager, GenderRequest(direction="man", variants=1, whole_photo=True, **FAST),
                          astronaut).variants[0]
    saved = Image.open(pnginfo.save_png(variant.image, tmp_path / "whole.png", variant.parameters))
    assert provenance.REGIONS_KEY not in saved.text and provenance.has_watermark(saved)


# --- identity on the edited face -----------------------------------------------------------------


@pytest.mark.usefixtures("with_dlib")
def test_a_face_turned_to_noise_is_never_read_as_the_same_person(group):
    area = find_face_area(group, face_index=0)
    face, region = area.parts[0].faces[0], area.region
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (512, 512, 3), np.uint8))
    noised = paste_back(group, noise, region, area.mask)
    distance = face_identity_distance(group, noised, face, region)
    assert distance is None or distance > faces.SAME_PERSON
    # the untouched faces still read as themselves, so the check is not simply blind
    other = find_face_area(group, face_index=1)
    assert face_identity_distance(group, noised, other.parts[0].faces[0], other.region) < 0.1
    note = identity_note(area, ["age 20"], [[distance]])
    assert note.endswith(f"age 20: {NO_FACE_IN_RESULT}.") if distance is None else "age 20: 0." not in note


@pytest.mark.usefixtures("with_dlib")
def test_tiny_model_noise_faces_report_no_face_not_a_small_distance(tiny_manager, group, tmp_path):
    req = AgingRequest(ages=[20, 50], transition_frames=0, strength=1.0, fps=4, face_index=0, **FAST)
    result = aging_timelapse(tiny_manager, req, group, tmp_path)
    for row in result.identity_by_face:
        assert all(d is None or d > faces.SAME_PERSON for d in row), row
    assert result.identity is None or min(result.identity) > faces.SAME_PERSON
    assert result.identity_note.startswith("Identity distance to the photo")
