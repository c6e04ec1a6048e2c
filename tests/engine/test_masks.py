"""engine.image.masks: mask formats, feathering, the "only masked" crop box and a paste-back that leaves the rest alone."""

import numpy as np
import pytest
from PIL import Image
from skimage import data

from engine.image.masks import EMPTY_MASK, blur_mask, dilate_mask, mask_to_l, masked_crop_box, paste_back

SIZE = (64, 48)  # (width, height)


def square_mask(size=SIZE, box=(20, 10, 30, 20)) -> Image.Image:
    """An 'L' mask, 255 inside box = (left, top, right, bottom)."""
    values = np.zeros((size[1], size[0]), np.uint8)
    left, top, right, bottom = box
    values[top:bottom, left:right] = 255
    return Image.fromarray(values, "L")


def as_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image).astype(int)


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut()[::2, ::2])  # 256x256


# --- mask_to_l -----------------------------------------------------------------------------


def test_bool_and_uint8_masks():
    painted = np.zeros((48, 64), bool)
    painted[10:20, 20:30] = True
    expected = painted.astype(np.uint8) * 255
    for mask in (painted, expected, Image.fromarray(expected, "L"), Image.fromarray(painted)):
        result = mask_to_l(mask, SIZE)
        assert result.mode == "L" and result.size == SIZE
        np.testing.assert_array_equal(np.asarray(result), expected)


def test_brush_layer_uses_alpha_even_for_a_black_brush():
    layer = np.zeros((48, 64, 4), np.uint8)
    layer[10:20, 20:30] = (0, 0, 0, 255)  # black paint on a transparent layer
    layer[30, 5] = (0, 0, 0, 40)  # a soft brush edge still counts
    result = np.asarray(mask_to_l(Image.fromarray(layer, "RGBA"), SIZE))
    assert result[15, 25] == 255 and result[30, 5] == 255
    assert result.sum() == 255 * (100 + 1)


def test_opaque_rgba_and_rgb_masks_use_brightness():
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[10:20, 20:30] = (255, 0, 0)  # a red stroke on black
    rgb[0:5, 0:5] = 6  # JPEG noise near black is not paint
    opaque = np.dstack([rgb, np.full((48, 64), 255, np.uint8)])
    for mask in (rgb, opaque, Image.fromarray(rgb), Image.fromarray(opaque, "RGBA")):
        result = np.asarray(mask_to_l(mask, SIZE))
        assert result[15, 25] == 255 and result[2, 2] == 0 and result.sum() == 255 * 100


def test_empty_mask_asks_for_paint():
    for mask in (np.zeros((48, 64), bool), Image.new("RGBA", SIZE, (255, 255, 255, 0))):
        with pytest.raises(ValueError) as caught:
            mask_to_l(mask, SIZE)
        assert str(caught.value) == EMPTY_MASK == "Paint the area to change: the mask is empty."


def test_size_mismatch_names_both_sizes():
    with pytest.raises(ValueError, match=r"^The mask is 100x80 but the image is 512x512; "):
        mask_to_l(np.ones((80, 100), bool), (512, 512))


def test_size_must_be_width_and_height():
    with pytest.raises(ValueError, match=r"\(width, height\)"):
        mask_to_l(np.ones((4, 4), bool), 4)


@pytest.mark.parametrize(
    "mask", [np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4), np.int32), "mask.png", None]
)
def test_bad_masks_are_refused(mask):
    with pytest.raises(ValueError, match="Pass the mask"):
        mask_to_l(mask, (4, 4))


# --- blur and dilate -----------------------------------------------------------------------


def test_blur_zero_is_unchanged_and_a_copy():
    mask = square_mask()
    result = blur_mask(mask, 0)
    np.testing.assert_array_equal(as_array(result), as_array(mask))
    assert result is not mask


def test_blur_feathers_the_edge_only_near_it():
    result = as_array(blur_mask(square_mask(size=(96, 96), box=(24, 24, 72, 72)), 4))
    assert 100 < result[48, 24] < 155, "the edge becomes soft, about half"
    assert result[48, 48] == 255, "the inside stays full"
    assert 0 < result[48, 20] < result[48, 24], "the blur reaches a little outside"
    assert result[48, 8] == 0 and result[0, 0] == 0, "far pixels stay untouched"


def test_blur_is_symmetric_around_a_centred_square():
    mask = square_mask(size=(40, 40), box=(15, 15, 25, 25))
    result = as_array(blur_mask(mask, 3))
    np.testing.assert_array_equal(result, result[::-1, ::-1])
    np.testing.assert_array_equal(result, result.T)


def test_blur_refuses_bad_input():
    with pytest.raises(ValueError, match="blur radius"):
        blur_mask(square_mask(), -1)
    with pytest.raises(ValueError, match="mask_to_l"):
        blur_mask(Image.new("RGB", SIZE), 4)


def test_dilate_grows_by_the_given_pixels():
    mask = square_mask()
    assert dilate_mask(mask, 4).getbbox() == (16, 6, 34, 24)
    assert dilate_mask(mask, 0).getbbox() == mask.getbbox()
    assert dilate_mask(mask, -2).getbbox() == (22, 12, 28, 18)
    grown = as_array(dilate_mask(np.asarray(mask), 4))
    assert set(np.unique(grown)) == {0, 255}


def test_dilate_refuses_fractions():
    with pytest.raises(ValueError, match="whole number"):
        dilate_mask(square_mask(), 1.5)


# --- masked_crop_box -----------------------------------------------------------------------


def test_crop_box_is_bbox_plus_padding_for_a_square_work_size():
    mask = square_mask(size=(512, 512), box=(100, 100, 110, 110))
    assert masked_crop_box(mask, 32, 512, 512) == (68, 68, 142, 142)
    assert masked_crop_box(mask, 0, 512, 512) == (100, 100, 110, 110)


@pytest.mark.parametrize(("work_width", "work_height"), [(512, 768), (768, 512), (512, 512), (640, 384)])
def test_crop_box_takes_the_work_aspect_and_contains_the_padded_mask(work_width, work_height):
    mask = square_mask(size=(512, 512), box=(200, 220, 260, 250))
    left, top, right, bottom = masked_crop_box(mask, 16, work_width, work_height)
    assert left <= 184 and top <= 204 and right >= 276 and bottom >= 266
    assert abs((right - left) / (bottom - top) - work_width / work_height) < 0.05
    assert 0 <= left < right <= 512 and 0 <= top < bottom <= 512


def test_crop_box_shifts_inside_the_image_at_edges():
    mask = square_mask(size=(512, 512), box=(0, 0, 40, 10))  # wide mask in the top-left corner
    box = masked_crop_box(mask, 8, 512, 512)
    assert box == (0, 0, 48, 48)
    mask = square_mask(size=(512, 512), box=(500, 480, 512, 512))
    left, top, right, bottom = masked_crop_box(mask, 32, 512, 1024)
    assert (right, bottom) == (512, 512) and (bottom - top) == 2 * (right - left)


def test_crop_box_uses_the_whole_side_when_the_image_is_too_small():
    mask = square_mask(size=(100, 50), box=(40, 10, 60, 40))
    # A tall work size wants a box taller than the image: the box takes the full height, and the
    # width stays the padded mask's, never cut down.
    assert masked_crop_box(mask, 32, 128, 512) == (8, 0, 92, 50)


def test_crop_box_refuses_empty_mask_and_bad_numbers():
    with pytest.raises(ValueError, match="mask is empty"):
        masked_crop_box(Image.new("L", SIZE), 32, 512, 512)
    with pytest.raises(ValueError, match="padding"):
        masked_crop_box(square_mask(), -1, 512, 512)
    with pytest.raises(ValueError, match="work width"):
        masked_crop_box(square_mask(), 0, 0, 512)


# --- paste_back ----------------------------------------------------------------------------


def only_masked_round_trip(original: Image.Image, painted: np.ndarray, work=(128, 128)):
    """The A1111 flow: mask -> dilate -> blur -> crop box -> crop and resize -> 'generate' -> paste back."""
    mask = blur_mask(dilate_mask(mask_to_l(painted, original.size), 4), 4)
    box = masked_crop_box(mask, 32, *work)
    crop = original.crop(box).resize(work)
    generated = Image.fromarray(255 - np.asarray(crop))  # stand-in for the model: invert the crop
    return paste_back(original, generated, box, mask), mask, box


def test_outside_the_mask_is_pixel_identical(astronaut):
    painted = np.zeros((256, 256), bool)
    yy, xx = np.mgrid[:256, :256]
    painted[(yy - 90) ** 2 + (xx - 130) ** 2 < 20**2] = True  # a disc over the face
    result, mask, box = only_masked_round_trip(astronaut, painted)
    out, orig, weights = as_array(result), as_array(astronaut), as_array(mask)

    assert result.mode == "RGB" and result.size == astronaut.size
    untouched = weights == 0
    assert untouched.sum() > 0.9 * untouched.size
    np.testing.assert_array_equal(out[untouched], orig[untouched])
    changed = weights == 255
    assert changed.sum() > 500
    assert np.abs(out[changed] - orig[changed]).mean() > 50, "inside the mask the generated pixels show"
    left, top, right, bottom = box
    outside_box = np.ones((256, 256), bool)
    outside_box[top:bottom, left:right] = False
    np.testing.assert_array_equal(out[outside_box], orig[outside_box])


def test_full_mask_pixels_equal_the_generated_crop():
    original = Image.new("RGB", (64, 64), (10, 20, 30))
    mask = square_mask(size=(64, 64), box=(16, 16, 48, 48))
    generated = Image.new("RGB", (512, 512), (200, 100, 50))  # any size; resized to the box
    result = as_array(paste_back(original, generated, (8, 8, 56, 56), mask))
    assert tuple(result[30, 30]) == (200, 100, 50)
    assert tuple(result[10, 10]) == (10, 20, 30)
    assert tuple(result[0, 0]) == (10, 20, 30)


def test_soft_mask_blends_proportionally():
    original = Image.new("RGB", (4, 4), (0, 0, 0))
    generated = Image.new("RGB", (4, 4), (255, 255, 255))
    mask = Image.fromarray(np.full((4, 4), 64, np.uint8), "L")
    assert paste_back(original, generated, (0, 0, 4, 4), mask).getpixel((1, 1)) == (64, 64, 64)


def test_paste_back_refuses_mismatched_mask_and_bad_box():
    original = Image.new("RGB", (64, 64))
    with pytest.raises(ValueError, match="The mask is 64x48 but the image is 64x64"):
        paste_back(original, original, (0, 0, 8, 8), square_mask())
    mask = square_mask(size=(64, 64))
    for box in ((0, 0, 80, 8), (10, 10, 10, 20), (0, 0, 8)):
        with pytest.raises(ValueError, match="box"):
            paste_back(original, original, box, mask)
