"""engine.provenance: every PNG, MP4 and GIF we write carries a watermark that decodes back and an AI-generated note."""

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine import provenance, video
from engine.files.pnginfo import png_bytes, read_parameters, save_png

PARAMETERS = "a portrait of a 70 years old woman\nSteps: 20, Sampler: DPM++ 2M, CFG scale: 7, Seed: 1, Size: 512x512"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real face photo (public domain, shipped with scikit-image), like the face tabs' inputs."""
    data = pytest.importorskip("skimage.data")
    return data.astronaut()


def _moving(photo: np.ndarray, n: int) -> list[np.ndarray]:
    """A slow zoom and pan, so the encoder makes real P/B frames rather than copies."""
    cv2 = pytest.importorskip("cv2")
    frames = []
    for i in range(n):
        matrix = cv2.getRotationMatrix2D((256, 256), 0, 1 + 0.01 * i)
        matrix[0, 2] += 2 * i
        frames.append(cv2.warpAffine(photo, matrix, (512, 512), borderMode=cv2.BORDER_REFLECT))
    return frames


def _decoded_frames(path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


# ---------------------------------------------------------------- the watermark itself


def test_watermark_decodes_back_and_is_invisible(photo):
    marked = provenance.watermark(Image.fromarray(photo))
    assert marked.mode == "RGB" and marked.size == (512, 512)
    assert provenance.read_watermark(marked) == provenance.WATERMARK
    assert provenance.has_watermark(marked)
    diff = np.abs(np.asarray(marked, np.int16) - photo.astype(np.int16))
    psnr = 10 * np.log10(255**2 / np.mean(diff.astype(np.float64) ** 2))
    # the package's own encoder wraps saturated colours around (specks ~100 levels off here)
    assert psnr > 40 and diff.max() <= 16


def test_unmarked_images_are_not_taken_for_ours(photo):
    rng = np.random.default_rng(0)
    assert not provenance.has_watermark(photo)
    assert not provenance.has_watermark(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8))
    assert not provenance.has_watermark(np.full((300, 400, 3), 128, np.uint8))


def _stock_decode(rgb: np.ndarray) -> bytes:
    """`invisible-watermark`'s dwtDctSvd decoder, transcribed loop for loop: what anyone else would run."""
    cv2 = pytest.importorskip("cv2")
    rows, cols = rgb.shape[0] // 4 * 4, rgb.shape[1] // 4 * 4
    plane = cv2.cvtColor(np.ascontiguousarray(rgb[:, :, ::-1]), cv2.COLOR_BGR2YUV)[:rows, :cols, 1].astype(float)
    # pywt.dwt2(plane, "haar")[0], written out: 1D Haar along rows, then along columns
    approx = (plane[0::2] + plane[1::2]) / np.sqrt(2)
    approx = (approx[:, 0::2] + approx[:, 1::2]) / np.sqrt(2)
    scores = [[] for _ in range(64)]
    num = 0
    for i in range(approx.shape[0] // 4):
        for j in range(approx.shape[1] // 4):
            block = approx[i * 4:i * 4 + 4, j * 4:j * 4 + 4]
            _, s, _ = np.linalg.svd(cv2.dct(block))
            scores[num % 64].append(int((s[0] % 36) > 36 * 0.5))
            num += 1
    bits = np.array([np.mean(votes) for votes in scores]) * 255 > 127
    return np.packbits(bits).tobytes()


def test_the_stock_decoder_reads_our_mark(photo):
    """Anyone with `invisible-watermark` can check our outputs with its stock call: the same algorithm."""
    marked = np.asarray(provenance.watermark(Image.fromarray(photo)))
    assert _stock_decode(marked) == provenance.WATERMARK
    assert _stock_decode(photo) != provenance.WATERMARK


def test_we_read_marks_the_package_made():
    """A 256x256 portrait watermarked by `invisible-watermark` 0.2.0's own encoder (tests/engine/data)."""
    with Image.open(Path(__file__).parent / "data" / "stock-watermarked.png") as stock:
        assert provenance.read_watermark(stock) == provenance.WATERMARK
        assert provenance.watermark_bit_errors(stock) == 0


def test_our_decoder_agrees_with_the_stock_one_bit_for_bit():
    rng = np.random.default_rng(5)
    for shape in [(300, 280, 3), (257, 511, 3), (512, 512, 3)]:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        assert provenance.read_watermark(image) == _stock_decode(image)


@pytest.mark.parametrize("size", [(64, 64), (255, 255), (200, 300)])
def test_images_under_256x256_pixels_are_left_alone(size):
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    assert np.array_equal(np.asarray(provenance.watermark(image)), np.asarray(image))
    assert provenance.read_watermark(image) is None and not provenance.has_watermark(image)


@pytest.mark.parametrize("size", [(512, 128), (511, 383), (768, 512)])
def test_odd_and_thin_sizes_carry_the_mark(photo, size):
    image = Image.fromarray(photo).resize(size)
    assert provenance.read_watermark(provenance.watermark(image)) == provenance.WATERMARK


def test_watermarking_is_thread_safe(photo):
    images = [Image.fromarray(np.roll(photo, 37 * i, axis=1)) for i in range(4)]
    serial = [np.asarray(provenance.watermark(image)) for image in images]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda image: np.asarray(provenance.watermark(image)), images * 2))
    for i, array in enumerate(parallel):
        assert np.array_equal(array, serial[i % 4])


# ---------------------------------------------------------------- PNG


def test_png_carries_the_mark_and_the_note(photo, tmp_path):
    path = save_png(photo, tmp_path / "aged.png", PARAMETERS)
    with Image.open(path) as reopened:
        assert provenance.read_watermark(reopened) == provenance.WATERMARK
        assert reopened.text["Comment"] == provenance.AI_NOTE
        assert reopened.text["Software"] == provenance.SOFTWARE
        assert reopened.text["parameters"] == PARAMETERS
    assert read_parameters(path) == PARAMETERS


def test_small_png_still_carries_the_note(tmp_path):
    image = Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    with Image.open(io.BytesIO(png_bytes(image, PARAMETERS))) as reopened:
        assert reopened.text["Comment"] == provenance.AI_NOTE
        assert np.array_equal(np.asarray(reopened), np.asarray(image))  # too small to mark: pixels as given


def test_png_keeps_transparency(photo):
    rgba = Image.fromarray(photo).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((512, 512)))
    with Image.open(io.BytesIO(png_bytes(rgba, PARAMETERS))) as reopened:
        assert reopened.mode == "RGBA"
        assert np.array_equal(np.asarray(reopened.getchannel("A")), np.asarray(rgba.getchannel("A")))
        assert provenance.read_watermark(reopened) == provenance.WATERMARK


# ---------------------------------------------------------------- MP4 and GIF


def test_mp4_frames_decode_the_mark_and_the_tags_say_ai_generated(photo, tmp_path):
    import av

    meta = {"title": "Aging timelapse", "seed": 7}
    path = video.write_mp4(_moving(photo, 8), tmp_path / "aging.mp4", fps=8, metadata=meta)  # CRF 18
    frames = _decoded_frames(path)
    assert len(frames) == 8
    assert [provenance.read_watermark(frame) for frame in frames] == [provenance.WATERMARK] * 8
    with av.open(str(path)) as container:
        assert container.metadata["description"] == provenance.AI_NOTE
    assert video.read_metadata(path) == meta  # the JSON comment is exactly what was passed


def test_mp4_mark_survives_crf_23(photo, tmp_path):
    path = video.write_mp4(_moving(photo, 4), tmp_path / "q23.mp4", fps=4, quality=23)
    assert all(provenance.has_watermark(frame) for frame in _decoded_frames(path))


def test_gif_frames_keep_the_mark_and_the_comment_says_ai_generated(photo, tmp_path):
    path = video.write_gif(_moving(photo, 4), tmp_path / "aging.gif", fps=4)
    with Image.open(path) as gif:
        assert gif.n_frames == 4
        assert gif.info["comment"] == provenance.AI_NOTE.encode()
        errors = []
        for i in range(gif.n_frames):
            gif.seek(i)
            errors.append(provenance.watermark_bit_errors(gif.convert("RGB")))
    # the 256-colour palette flips a few of the 64 bits (0-3 seen); has_watermark allows 8
    assert max(errors) <= provenance.MAX_BIT_ERRORS, errors


def test_small_videos_are_written_unmarked_but_labelled(tmp_path):
    import av

    frames = [np.full((64, 96, 3), level, np.uint8) for level in (10, 90, 170)]
    path = video.write_mp4(frames, tmp_path / "small.mp4", fps=3)
    with av.open(str(path)) as container:
        assert container.metadata["description"] == provenance.AI_NOTE
    gif = video.write_gif(frames, tmp_path / "small.gif", fps=3)
    with Image.open(gif) as reopened:
        assert reopened.info["comment"] == provenance.AI_NOTE.encode()


# ---------------------------------------------------------------- edits of a real photo


def _edit(photo: np.ndarray, box=(128, 96, 448, 416)):
    """A photo with an elliptical area redrawn (inverted), like a face repaint, and the mask that says where."""
    from PIL import ImageDraw

    mask = Image.new("L", (photo.shape[1], photo.shape[0]), 0)
    ImageDraw.Draw(mask).ellipse(box, fill=255)
    inside = np.asarray(mask) > 0
    edited = photo.copy()
    edited[inside] = 255 - edited[inside]
    return Image.fromarray(edited), mask, inside


def test_an_edit_is_marked_only_inside_its_mask(photo, tmp_path):
    edited, mask, inside = _edit(photo)
    marked = provenance.watermark_inside(edited, mask)
    path = save_png(marked, tmp_path / "edit.png", PARAMETERS)
    with Image.open(path) as reopened:
        pixels = np.asarray(reopened.convert("RGB"))
        assert reopened.text[provenance.REGIONS_KEY] == "128,96,449,417"  # PIL draws the box inclusive
        assert provenance.read_watermark(reopened) == provenance.WATERMARK
        assert provenance.has_watermark(reopened)
    assert np.array_equal(pixels[~inside], photo[~inside])  # the untouched photo, byte for byte
    assert not np.array_equal(pixels[inside], np.asarray(edited)[inside])  # the mark is really there


def test_each_region_is_marked_and_read_on_its_own(photo):
    big = np.concatenate([photo, photo], axis=1)  # 1024x512: two "faces"
    mask = Image.new("L", (1024, 512), 0)
    mask.paste(255, (40, 40, 340, 340))
    mask.paste(255, (600, 100, 900, 400))
    marked = provenance.watermark_inside(Image.fromarray(big), mask, [(40, 40, 340, 340), (600, 100, 900, 400)])
    assert provenance.parse_regions(marked.info[provenance.REGIONS_KEY]) == [(40, 40, 340, 340), (600, 100, 900, 400)]
    array = np.asarray(marked)
    assert provenance.read_watermark(Image.fromarray(array[100:400, 600:900])) == provenance.WATERMARK
    outside = np.asarray(mask) == 0
    assert np.array_equal(array[outside], big[outside])


def test_a_region_too_small_to_mark_leaves_the_photo_alone(photo, tmp_path):
    edited, mask, inside = _edit(photo, box=(200, 200, 300, 300))
    marked = provenance.watermark_inside(edited, mask)
    assert marked.info[provenance.REGIONS_KEY] == ""
    with Image.open(save_png(marked, tmp_path / "small.png", PARAMETERS)) as reopened:
        assert np.array_equal(np.asarray(reopened.convert("RGB")), np.asarray(edited))
        assert reopened.text["Comment"] == provenance.AI_NOTE
        assert provenance.REGIONS_KEY not in reopened.text


def test_a_mask_of_another_size_is_refused(photo):
    with pytest.raises(ValueError, match="same size"):
        provenance.watermark_inside(Image.fromarray(photo), Image.new("L", (10, 10)))


def test_damaged_region_text_is_not_trusted(photo):
    assert provenance.parse_regions("1,2,3;x,1,2,3;4,5,6,7") == [(4, 5, 6, 7)]
    image = provenance.watermark(Image.fromarray(photo))
    image.info[provenance.REGIONS_KEY] = "nonsense"
    assert provenance.read_watermark(image) == provenance.WATERMARK  # falls back to the whole picture
