"""A face edit's watermark is found without its metadata (stripped, re-saved as JPEG, cropped); plain photos are not."""
import io

import numpy as np
import pytest
from PIL import Image

from engine import provenance
from engine.faces.aging import AgingRequest, aging_timelapse
from engine.faces.gender import GenderRequest, gender_swap
from engine.faces.portrait import find_face_area
from engine.files import pnginfo

FAST = dict(num_inference_steps=3, size=64, sampler="Euler")


def resaved(image: Image.Image, fmt: str, **options) -> Image.Image:
    """The pixels only, as a browser's "save as", a chat app or an editor would keep them."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, fmt, **options)
    buffer.seek(0)
    return Image.open(buffer)


@pytest.fixture(scope="module")
def swapped(tiny_manager, astronaut, tmp_path_factory) -> Image.Image:
    """A gender swap of the 512-px astronaut, saved as the app saves it (the regions in its PNG text)."""
    variant = gender_swap(tiny_manager, GenderRequest(direction="man", seed=4, **FAST), astronaut).variants[0]
    path = pnginfo.save_png(variant.image, tmp_path_factory.mktemp("swap") / "swap.png", variant.parameters)
    saved = Image.open(path)
    assert provenance.REGIONS_KEY in saved.text and provenance.has_watermark(saved)
    return saved


def test_a_png_stripped_of_its_text_still_reads_as_ours(swapped):
    stripped = resaved(swapped, "PNG")
    assert provenance.REGIONS_KEY not in stripped.info
    assert provenance.read_watermark(stripped) == provenance.WATERMARK
    assert provenance.watermark_bit_errors(stripped) == 0


@pytest.mark.parametrize("quality", [95, 90])
def test_a_jpeg_copy_still_reads_as_ours(swapped, quality):
    copy = resaved(swapped, "JPEG", quality=quality)
    assert provenance.has_watermark(copy)
    assert provenance.has_watermark(np.asarray(copy.convert("RGB")))  # arrays are searched the same way


def test_a_cropped_copy_still_reads_as_ours(swapped):
    width, height = swapped.size
    assert provenance.has_watermark(resaved(swapped.crop((13, 7, width, height)), "PNG"))  # off the 8-px grid
    assert provenance.has_watermark(resaved(swapped.crop((0, 0, width // 2 + 100, height)), "PNG"))


def test_an_aging_frame_saved_as_jpeg_reads_as_ours(tiny_manager, astronaut, tmp_path):
    req = AgingRequest(ages=[20, 70], transition_frames=0, strength=0.6, seed=9, fps=4, **FAST)
    _, image = aging_timelapse(tiny_manager, req, astronaut, tmp_path).keyframes[-1]
    saved = Image.open(pnginfo.save_png(image, tmp_path / "age70.png", "age 70"))
    assert provenance.has_watermark(resaved(saved, "JPEG", quality=90))


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket"])
def test_plain_photos_read_as_unmarked(name):
    data = pytest.importorskip("skimage.data")
    photo = Image.fromarray(getattr(data, name)())
    for copy in (photo, resaved(photo, "JPEG", quality=90)):
        assert not provenance.has_watermark(copy)
        assert provenance.watermark_bit_errors(copy) > 16


def test_a_rescaled_copy_is_not_found(swapped):
    """The README's stated limit: resampling moves every block, so even 95 % loses the mark."""
    width, height = swapped.size
    smaller = swapped.convert("RGB").resize((round(width * 0.95), round(height * 0.95)), Image.Resampling.LANCZOS)
    assert not provenance.has_watermark(smaller)


def test_a_large_picture_is_searched_around_its_face(astronaut):
    """Over `SEARCH_PIXELS` only squares around detected faces are searched: the face edit is still found."""
    photo = astronaut.resize((2600, 2600), Image.Resampling.LANCZOS)
    assert photo.width * photo.height > provenance.SEARCH_PIXELS
    area = find_face_area(photo)
    marked = provenance.watermark_inside(photo, area.mask, regions=area.mark_boxes)
    copy = resaved(marked, "JPEG", quality=90)
    assert provenance.has_watermark(copy)
    assert not provenance.has_watermark(resaved(photo, "JPEG", quality=90))
