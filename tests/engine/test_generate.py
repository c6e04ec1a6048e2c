import math

import numpy as np
import pytest
from PIL import Image

from engine.files import pnginfo
from engine.image.generate import image_to_image, inpaint, inpaint_preview, request_from_parameters, text_to_image
from engine.image.request import ImageRequest, RunControl, check_request

FAST = dict(prompt="a red apple", num_inference_steps=3, width=64, height=64, sampler="Euler")


def pixels(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_same_seed_and_settings_give_the_same_pixels(tiny_manager):
    a = text_to_image(tiny_manager, ImageRequest(seed=42, **FAST)).images[0]
    b = text_to_image(tiny_manager, ImageRequest(seed=42, **FAST)).images[0]
    c = text_to_image(tiny_manager, ImageRequest(seed=43, **FAST)).images[0]
    assert np.array_equal(pixels(a.image), pixels(b.image))
    assert not np.array_equal(pixels(a.image), pixels(c.image))


def test_random_seed_is_reported_and_batches_count_up(tiny_manager):
    result = text_to_image(tiny_manager, ImageRequest(seed=-1, batch_count=2, **FAST))
    first, second = (item.seed for item in result.images)
    assert 0 <= first < 2**32 and second == (first + 1) % 2**32
    again = text_to_image(tiny_manager, ImageRequest(seed=second, **FAST)).images[0]
    assert np.array_equal(pixels(again.image), pixels(result.images[1].image))


def test_parameters_follow_a1111_and_load_back(tiny_manager):
    item = text_to_image(tiny_manager, ImageRequest(seed=5, negative_prompt="blurry",
                                                    **{**FAST, "sampler": "DPM++ 2M Karras"})).images[0]
    fields = pnginfo.parse_parameters(item.parameters)
    assert fields["Sampler"] == "DPM++ 2M" and fields["Schedule type"] == "Karras"
    assert fields["Seed"] == "5" and fields["Size"] == "64x64" and fields["Model"] == "tiny"
    req, skipped = request_from_parameters(item.parameters)
    assert skipped == []
    assert (req.prompt, req.negative_prompt, req.seed, req.sampler, req.num_inference_steps) == (
        "a red apple", "blurry", 5, "DPM++ 2M Karras", 3)


def test_progress_reaches_every_step_with_previews(tiny_manager):
    updates = []
    text_to_image(tiny_manager, ImageRequest(seed=1, **{**FAST, "num_inference_steps": 8}), on_step=updates.append)
    assert [u.step for u in updates] == list(range(1, 9))
    assert updates[-1].fraction == 1.0
    previews = [u.preview for u in updates if u.preview is not None]
    assert previews and previews[-1].size == (64, 64)


def test_stop_interrupts_and_returns_what_was_made(tiny_manager):
    control = RunControl()
    steps_seen = []

    def on_step(update):
        steps_seen.append(update.step)
        if update.step == 2:
            control.stop()

    result = text_to_image(tiny_manager, ImageRequest(seed=1, batch_count=3, **{**FAST, "num_inference_steps": 20}),
                           on_step=on_step, control=control)
    assert result.interrupted and len(result.images) == 1 and result.images[0].interrupted
    assert max(steps_seen) < 20


@pytest.mark.parametrize("field, value, message", [
    ("num_inference_steps", 0, "Steps must be"), ("num_inference_steps", 151, "Steps must be"),
    ("guidance_scale", math.nan, "finite"), ("guidance_scale", 31, "Guidance scale must be"),
    ("seed", 2**32, "Seed must be"), ("seed", -2, "Seed must be"), ("width", 32, "Width must be"),
    ("batch_count", 0, "Batch count"), ("sampler", "Nope", "Unknown sampler"), ("height", "tall", "number"),
])
def test_bad_settings_get_one_sentence(field, value, message):
    with pytest.raises(ValueError, match=message):
        check_request(ImageRequest(**{**FAST, field: value}))


def test_sizes_are_rounded_to_multiples_of_8_and_said(tiny_manager):
    result = text_to_image(tiny_manager, ImageRequest(seed=1, **{**FAST, "width": 70}))
    assert result.images[0].image.size == (72, 64)
    assert any("72" in note for note in result.notes)


def test_img2img_progress_carries_the_steps_and_strength_that_shorten_its_schedule(tiny_manager, photo_64):
    updates = []
    image_to_image(tiny_manager, ImageRequest(seed=1, strength=0.55, **{**FAST, "num_inference_steps": 25}),
                   photo_64, on_step=updates.append)
    last = updates[-1]
    assert (last.step, last.total_steps, last.num_inference_steps, last.strength) == (13, 13, 25, 0.55)
    plain = []
    text_to_image(tiny_manager, ImageRequest(seed=1, **FAST), on_step=plain.append)
    assert (plain[-1].total_steps, plain[-1].num_inference_steps, plain[-1].strength) == (3, None, None)


def test_img2img_keeps_the_aspect_ratio(tiny_manager):
    photo = Image.new("RGB", (200, 100), (200, 30, 30))
    result = image_to_image(tiny_manager, ImageRequest(seed=1, strength=0.5, **{**FAST, "width": 128,
                                                                               "height": 128}), photo)
    assert result.images[0].image.size == (128, 64)
    assert "Denoising strength: 0.5" in result.images[0].parameters


@pytest.mark.parametrize("only_masked", [False, True])
def test_inpaint_changes_only_the_masked_area(tiny_manager, astronaut, only_masked):
    photo = astronaut.resize((160, 120))
    mask = np.zeros((120, 160), dtype=bool)
    mask[40:80, 60:100] = True
    req = ImageRequest(seed=3, strength=1.0, mask_blur=4, only_masked=only_masked, only_masked_padding=8, **FAST)
    out = inpaint(tiny_manager, req, photo, mask).images[0].image
    assert out.size == photo.size
    before, after = pixels(photo), pixels(out)
    grown = np.zeros_like(mask)
    grown[40 - 12:80 + 12, 60 - 12:100 + 12] = True  # blur spreads the edge a few pixels
    assert np.array_equal(before[~grown], after[~grown])
    assert np.abs(before[mask] - after[mask]).mean() > 10


def test_saved_inpaint_keeps_every_pixel_outside_the_mask_and_carries_the_mark(tiny_manager, astronaut, tmp_path):
    """The downloaded PNG, not just the array: the watermark goes only where the model painted."""
    from engine import provenance
    from engine.files.pnginfo import save_png
    from engine.image.masks import blur_mask

    photo = astronaut.resize((480, 400))
    mask = np.zeros((400, 480), dtype=bool)
    mask[50:350, 100:400] = True
    req = ImageRequest(seed=3, strength=1.0, mask_blur=4, only_masked=True, only_masked_padding=8, **FAST)
    item = inpaint(tiny_manager, req, photo, mask).images[0]
    with Image.open(save_png(item.image, tmp_path / "inpaint.png", item.parameters)) as saved:
        assert provenance.has_watermark(saved)
        after = pixels(saved.convert("RGB"))
    before = pixels(photo)
    kept = (after == before).all(axis=2)
    painted = np.asarray(blur_mask(mask.astype(np.uint8) * 255, 4)) > 0  # the feathered edge reaches outward
    assert kept[~painted].all()
    assert not kept[mask].all()


def test_inpaint_with_an_empty_or_wrong_size_mask_says_what_to_do(tiny_manager, photo_64):
    with pytest.raises(ValueError, match="Paint the area to change"):
        inpaint(tiny_manager, ImageRequest(**FAST), photo_64, np.zeros((64, 64), bool))
    with pytest.raises(ValueError, match="mask is"):
        inpaint(tiny_manager, ImageRequest(**FAST), photo_64, np.ones((32, 32), bool))


def test_mask_preview_tints_the_masked_area(photo_64):
    mask = np.zeros((64, 64), bool)
    mask[10:30, 10:30] = True
    shown = pixels(inpaint_preview(photo_64, mask, mask_blur=0))
    assert shown[20, 20, 0] > shown[20, 20, 1]
    assert np.array_equal(shown[50:, 50:], pixels(photo_64)[50:, 50:])


@pytest.mark.parametrize("sampler", ["Euler", "DPM++ 2M Karras", "DDIM", "UniPC"])
def test_denoising_video_predictions_end_on_the_final_image(tiny_manager, sampler):
    item = text_to_image(tiny_manager, ImageRequest(seed=1, denoise_video=True,
                                                    **{**FAST, "num_inference_steps": 5, "sampler": sampler})).images[0]
    assert len(item.steps) == 5
    final = pixels(item.image)
    assert np.abs(pixels(item.steps[-1]) - final).mean() < 0.5
    assert np.abs(pixels(item.steps[0]) - final).mean() > 1.0
