"""engine.files.images: every kind of upload ends as 8-bit RGB, and bad files end as a clear ValueError."""

import io

import numpy as np
import pytest
from PIL import Image
from skimage import data

from engine.files import images
from engine.files.images import load_image, scale_to_long_side, snap_size


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut()[::4, ::4])  # 128x128 keeps the tests fast


# --- sources -------------------------------------------------------------------------------


def test_path_str_and_bytes_give_the_same_pixels(tmp_path, astronaut):
    path = tmp_path / "astronaut.png"
    astronaut.save(path)
    expected = np.asarray(astronaut)
    for source in (path, str(path), path.read_bytes(), astronaut):
        result = load_image(source)
        assert result.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(result), expected)


def test_result_is_a_copy_not_the_callers_image(astronaut):
    result = load_image(astronaut)
    result.putpixel((0, 0), (1, 2, 3))
    assert astronaut.getpixel((0, 0)) != (1, 2, 3)


def test_webp_and_jpeg_are_read(astronaut):
    for fmt in ("WEBP", "JPEG"):
        result = load_image(encode(astronaut, fmt, quality=95))
        assert result.size == astronaut.size
        assert np.abs(pixels(result) - np.asarray(astronaut).astype(int)).mean() < 6


def test_missing_file_says_so(tmp_path):
    with pytest.raises(ValueError, match="was not found"):
        load_image(tmp_path / "nope.png")


def test_text_file_is_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("hello, not a picture")
    with pytest.raises(ValueError, match=r"is not an image Diffusion Studio can read \(PNG, JPEG or WebP\)"):
        load_image(path)


def test_other_formats_are_refused():
    tiff = encode(Image.new("RGB", (8, 8)), "TIFF")
    with pytest.raises(ValueError, match="is not an image Diffusion Studio can read"):
        load_image(tiff)


def test_unsupported_source_type():
    with pytest.raises(ValueError, match="file path, bytes, a PIL image or a numpy array"):
        load_image(12)


# --- damaged files -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_truncated_file_is_rejected(astronaut, fmt):
    whole = encode(astronaut, fmt)
    assert load_image(whole).size == astronaut.size
    with pytest.raises(ValueError, match="damaged or incomplete"):
        load_image(whole[: len(whole) * 2 // 3])


def test_lazily_opened_truncated_pil_image_is_rejected(astronaut):
    whole = encode(astronaut, "JPEG")
    lazy = Image.open(io.BytesIO(whole[: len(whole) // 2]))
    with pytest.raises(ValueError, match="damaged or incomplete"):
        load_image(lazy)


def test_corrupt_png_data_is_rejected(astronaut):
    whole = bytearray(encode(astronaut, "PNG"))
    middle = len(whole) // 2
    whole[middle : middle + 64] = bytes(64)  # zero out part of the compressed pixels
    with pytest.raises(ValueError, match="damaged or incomplete"):
        load_image(bytes(whole))


# --- size limits ---------------------------------------------------------------------------


def test_too_wide_is_refused_from_the_header_before_decoding():
    wide = encode(Image.new("L", (images.MAX_SIDE + 8, 2)), "PNG")
    # Cut the pixel data away: a decoder would say "damaged", the header check says "too large".
    header_only = wide[:60]
    for source in (wide, header_only):
        with pytest.raises(ValueError, match=r"4104x2.*at most 4096 pixels per side and 40 megapixels"):
            load_image(source)


def test_array_and_pil_inputs_obey_the_limits():
    with pytest.raises(ValueError, match="too large"):
        load_image(np.zeros((2, images.MAX_SIDE + 1), np.uint8))
    with pytest.raises(ValueError, match="too large"):
        load_image(Image.new("RGB", (images.MAX_SIDE + 1, 2)))


def test_pixel_count_limit(monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    assert load_image(Image.new("RGB", (40, 25))).size == (40, 25)
    with pytest.raises(ValueError, match="40x26.*0.001 megapixels"):
        load_image(encode(Image.new("RGB", (40, 26)), "PNG"))


def test_decompression_bomb_error_becomes_a_value_error(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow raises past 2x this
    with pytest.raises(ValueError, match="too large: resize it to at most 4096 pixels per side"):
        load_image(encode(Image.new("RGB", (40, 40)), "PNG"))


# --- orientation and modes -----------------------------------------------------------------


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (20, 10), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 6, 10))  # red strip on the left
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    result = load_image(encode(image, "JPEG", exif=exif.tobytes(), quality=95))
    assert result.size == (10, 20)
    top, bottom = pixels(result)[1, 5], pixels(result)[-2, 5]
    assert top[0] > 200 and top[2] < 60, "the left strip must end on top"
    assert bottom[2] > 200 and bottom[0] < 60


def test_rgba_is_composited_over_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:, :2] = (255, 0, 0, 128)  # half-transparent red
    rgba[:, 2:] = (0, 0, 255, 0)  # fully transparent blue is invisible
    result = pixels(load_image(encode(Image.fromarray(rgba, "RGBA"), "PNG")))
    assert tuple(result[0, 0]) == (255, 127, 127)
    assert tuple(result[0, 3]) == (255, 255, 255)


def test_la_and_palette_transparency_become_white():
    la = Image.fromarray(np.dstack([np.full((4, 4), 10, np.uint8), np.zeros((4, 4), np.uint8)]), "LA")
    assert tuple(pixels(load_image(la))[0, 0]) == (255, 255, 255)

    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 255, 0, 255, 0, 0] + [0] * 762)
    palette.paste(0, (0, 0, 2, 4))
    reopened = Image.open(io.BytesIO(encode(palette, "PNG", transparency=1)))
    result = pixels(load_image(reopened))
    assert tuple(result[0, 0]) == (0, 255, 0)
    assert tuple(result[0, 3]) == (255, 255, 255)


def test_grayscale_becomes_three_equal_channels():
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    result = pixels(load_image(encode(Image.fromarray(gray, "L"), "PNG")))
    for channel in range(3):
        np.testing.assert_array_equal(result[:, :, channel], gray)


def test_sixteen_bit_png_keeps_its_full_range():
    ramp = np.tile(np.linspace(0, 65535, 256).round().astype(np.uint16), (4, 1))
    reopened = Image.open(io.BytesIO(encode(Image.fromarray(ramp), "PNG")))
    assert reopened.mode.startswith("I")
    row = pixels(load_image(reopened))[0, :, 0]
    assert row[0] == 0 and row[-1] == 255 and row[128] in (128, 129)
    assert np.all(np.diff(row) >= 0) and len(np.unique(row)) > 200


def test_mode_i_is_read_as_sixteen_bit():
    values = np.array([[0, 257, 32896, 65535]], dtype=np.int32)
    result = pixels(load_image(Image.fromarray(values, "I")))
    assert list(result[0, :, 0]) == [0, 1, 128, 255]


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (8, 8), (0, 0, 0, 0))  # no ink: white
    cmyk.paste((0, 255, 255, 0), (0, 0, 4, 8))  # magenta + yellow: red
    result = pixels(load_image(encode(cmyk, "JPEG", quality=95)))
    assert np.all(np.abs(result[4, 7] - 255) < 8)
    assert result[4, 0][0] > 230 and result[4, 0][1] < 30 and result[4, 0][2] < 30


# --- numpy arrays --------------------------------------------------------------------------


def test_uint8_arrays_of_each_shape():
    gray = np.full((3, 5), 7, np.uint8)
    assert load_image(gray).size == (5, 3)
    assert tuple(pixels(load_image(gray))[0, 0]) == (7, 7, 7)
    rgb = np.zeros((3, 5, 3), np.uint8)
    rgb[..., 1] = 200
    assert tuple(pixels(load_image(rgb))[2, 4]) == (0, 200, 0)
    rgba = np.zeros((3, 5, 4), np.uint8)
    assert tuple(pixels(load_image(rgba))[0, 0]) == (255, 255, 255)


def test_uint16_and_float_arrays_are_scaled():
    assert list(pixels(load_image(np.array([[0, 257, 65535]], np.uint16)))[0, :, 0]) == [0, 1, 255]
    floats = np.array([[0.0, 0.5, 1.0]], np.float32)
    assert list(pixels(load_image(floats))[0, :, 0]) == [0, 128, 255]


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 4, 2), np.uint8), "HxW, HxWx3 or HxWx4"),
        (np.zeros((2, 4, 4, 3), np.uint8), "HxW, HxWx3 or HxWx4"),
        (np.zeros((4, 4), np.int64), "uint8, uint16 or float 0..1"),
        (np.full((4, 4), 2.0), "must lie in 0..1"),
        (np.full((4, 4), -1.0), "must lie in 0..1"),
        (np.full((4, 4), np.nan), "NaN"),
        (np.zeros((0, 4), np.uint8), "empty"),
    ],
)
def test_bad_arrays_are_refused(array, message):
    with pytest.raises(ValueError, match=message):
        load_image(array)


# --- sizes ---------------------------------------------------------------------------------


def test_snap_size_leaves_good_sizes_alone():
    assert snap_size(512, 768) == (512, 768, None)


def test_snap_size_rounds_and_says_so():
    assert snap_size(500, 512) == (504, 512, "Width 500 was rounded to 504 (a multiple of 8).")
    assert snap_size(512, 509) == (512, 512, "Height 509 was rounded to 512 (a multiple of 8).")
    width, height, note = snap_size(499, 301)
    assert (width, height) == (496, 304)
    assert note == "Width 499 and height 301 were rounded to 496 and 304 (multiples of 8)."


def test_snap_size_minimum_and_other_multiples():
    assert snap_size(3, 1)[:2] == (8, 8)
    assert snap_size(100, 100, multiple=64)[:2] == (128, 128)
    assert snap_size(512.0, 512.0) == (512, 512, None)


@pytest.mark.parametrize("args", [(0, 512), (512, -8), (512, float("nan")), ("512", 512), (512, 512, 0)])
def test_snap_size_refuses_bad_input(args):
    with pytest.raises(ValueError, match="Pass a"):
        snap_size(*args)


def test_scale_to_long_side_keeps_aspect_ratio():
    assert scale_to_long_side(1024, 768, 512) == (512, 384)
    assert scale_to_long_side(768, 1024, 512) == (384, 512)
    width, height = scale_to_long_side(1000, 333, 512)
    assert width == 512 and height % 8 == 0 and abs(height - 170.5) <= 4
    assert scale_to_long_side(4000, 10, 512) == (512, 8)
    assert scale_to_long_side(300, 300, 515) == (512, 512)


def test_scale_to_long_side_refuses_bad_input():
    with pytest.raises(ValueError, match="long side"):
        scale_to_long_side(512, 512, 0)
