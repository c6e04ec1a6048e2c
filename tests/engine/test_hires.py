"""Hires. fix: sizes, seeds, the two passes, Stop, and A1111's PNG-info fields, on the tiny model."""
import pytest
from PIL import Image

from engine.files import pnginfo
from engine.image.generate import request_from_parameters, text_to_image
from engine.image.hires import UPSCALERS, hires_size, schedule_length
from engine.image.parameters import parameters_text
from engine.image.request import ImageRequest, RunControl

BASE = dict(prompt="a lighthouse at dusk", num_inference_steps=3, width=64, height=64, seed=11)


def run(manager, on_step=None, control=None, **hires):
    return text_to_image(manager, ImageRequest(**{**BASE, **hires}), on_step, control)


# 1. pure parts
@pytest.mark.parametrize("strength", [0.05, 0.1, 0.3, 0.45, 0.5, 0.7, 0.75, 0.99, 1.0])
@pytest.mark.parametrize("steps", [1, 3, 10, 20, 33, 150])
def test_the_second_pass_runs_exactly_the_hires_steps(steps, strength):
    length = schedule_length(steps, strength)
    assert int(length * strength) == steps  # what diffusers' img2img then runs
    assert length >= steps


def test_final_size_is_the_base_times_the_scale_in_multiples_of_8():
    assert hires_size(512, 512, 2) == (1024, 1024)
    assert hires_size(512, 768, 1.5) == (768, 1152)
    assert hires_size(100, 64, 1.3) == (128, 80)


# 2. on the tiny model
@pytest.mark.parametrize("upscaler", ["Latent", "Lanczos"])
def test_hires_makes_the_scaled_size_and_repeats_with_the_seed(tiny_manager, upscaler):
    first = run(tiny_manager, hires_scale=2, hires_upscaler=upscaler).images[0]
    again = run(tiny_manager, hires_scale=2, hires_upscaler=upscaler).images[0]
    assert first.image.size == (128, 128) and first.seed == 11
    assert first.image.tobytes() == again.image.tobytes()
    assert run(tiny_manager, hires_scale=1.5, hires_upscaler=upscaler).images[0].image.size == (96, 96)


def test_strength_0_is_the_base_image_upscaled_and_strength_redraws_it(tiny_manager):
    plain = run(tiny_manager).images[0].image
    upscaled = run(tiny_manager, hires_scale=2, hires_upscaler="Lanczos", hires_strength=0).images[0].image
    assert upscaled.tobytes() == plain.resize((128, 128), Image.LANCZOS).tobytes()
    redrawn = run(tiny_manager, hires_scale=2, hires_upscaler="Lanczos", hires_strength=0.6).images[0].image
    assert redrawn.size == (128, 128) and redrawn.tobytes() != upscaled.tobytes()
    latent_only = run(tiny_manager, hires_scale=2, hires_strength=0).images[0].image
    assert latent_only.size == (128, 128)


def test_hires_steps_set_the_second_pass_and_0_means_the_base_steps(tiny_manager):
    def steps_seen(**hires):
        seen = []
        run(tiny_manager, on_step=lambda u: seen.append((u.step, u.total_steps)), **hires)
        return seen

    assert steps_seen(hires_scale=2, hires_steps=5) == [(i, 8) for i in range(1, 9)]
    assert steps_seen(hires_scale=2, hires_steps=0, hires_strength=0.3) == [(i, 6) for i in range(1, 7)]
    three = run(tiny_manager, hires_scale=2, hires_steps=3).images[0].image
    five = run(tiny_manager, hires_scale=2, hires_steps=5).images[0].image
    assert three.tobytes() != five.tobytes()


def test_each_image_of_a_batch_equals_its_solo_run(tiny_manager):
    batch = run(tiny_manager, hires_scale=1.5, hires_upscaler="Lanczos", batch_count=2)
    assert [item.seed for item in batch.images] == [11, 12]
    solo = text_to_image(tiny_manager, ImageRequest(**{**BASE, "seed": 12}, hires_scale=1.5,
                                                    hires_upscaler="Lanczos")).images[0]
    assert batch.images[1].image.tobytes() == solo.image.tobytes()


def test_stop_keeps_the_unfinished_image(tiny_manager):
    control = RunControl()

    def stop_at(step):
        def on_step(update):
            if update.step == step:
                control.stop()
        return on_step

    late = run(tiny_manager, on_step=stop_at(4), control=control, hires_scale=2, hires_steps=3)
    assert late.interrupted and late.images[0].interrupted and late.images[0].image.size == (128, 128)
    control.reset()
    early = run(tiny_manager, on_step=stop_at(1), control=control, hires_scale=2, hires_steps=3)
    assert early.interrupted and early.images[0].image.size == (64, 64)
    assert any("before Hires. fix" in note for note in early.notes)


def test_the_denoising_video_covers_both_passes_at_the_final_size(tiny_manager):
    item = run(tiny_manager, hires_scale=2, hires_steps=2, hires_upscaler="Lanczos", denoise_video=True).images[0]
    assert len(item.steps) == 3 + 2 and {frame.size for frame in item.steps} == {(128, 128)}


@pytest.mark.parametrize("hires, message", [
    (dict(hires_scale=0.5), "Hires upscale must be from 1 to 4"),
    (dict(hires_scale=5), "Hires upscale must be from 1 to 4"),
    (dict(hires_scale="two"), "Hires upscale must be a number"),
    (dict(hires_scale=2, width=1536, height=512), "above the 2048 px limit"),
    (dict(hires_scale=2, hires_upscaler="R-ESRGAN 4x+"), "Unknown Hires upscaler 'R-ESRGAN 4x\\+'; choose one of"),
    (dict(hires_scale=2, hires_strength=1.5), "strength must be from 0 to 1"),
    (dict(hires_scale=2, hires_steps=-1), "Hires steps must be a whole number"),
    (dict(hires_scale=2, hires_steps=2.5), "Hires steps must be a whole number"),
])
def test_bad_hires_settings_get_a_sentence(tiny_manager, hires, message):
    with pytest.raises(ValueError, match=message):
        run(tiny_manager, **hires)


def test_latent_upscaling_at_low_strength_gets_a_note(tiny_manager):
    assert any("soft" in note for note in run(tiny_manager, hires_scale=1, hires_strength=0.2).notes)
    assert not run(tiny_manager, hires_scale=1, hires_strength=0.2, hires_upscaler="Lanczos").notes


# 3. PNG info
def test_png_info_carries_a1111_hires_fields_and_reads_back(tiny_manager, tmp_path):
    item = run(tiny_manager, hires_scale=1.5, hires_upscaler="Lanczos", hires_steps=2, hires_strength=0.4).images[0]
    fields = pnginfo.parse_parameters(item.parameters)
    assert fields["Size"] == "64x64"  # the first pass's size, as A1111 writes it
    assert (fields["Hires upscale"], fields["Hires upscaler"], fields["Hires steps"],
            fields["Denoising strength"]) == ("1.5", "Lanczos", "2", "0.4")
    path = pnginfo.save_png(item.image, tmp_path / "hires.png", item.parameters)
    req, skipped = request_from_parameters(pnginfo.read_parameters(path))
    assert not skipped
    assert (req.hires_scale, req.hires_upscaler, req.hires_steps, req.hires_strength) == (1.5, "Lanczos", 2, 0.4)
    again = text_to_image(tiny_manager, req).images[0]
    assert again.image.tobytes() == item.image.tobytes()


def test_hires_steps_0_is_left_out_as_a1111_does(tiny_manager):
    req = ImageRequest(**BASE, hires_scale=2)
    assert "Hires steps" not in parameters_text(tiny_manager, "txt2img", req, 1)
    assert "Hires" not in parameters_text(tiny_manager, "txt2img", ImageRequest(**BASE), 1)


def test_a1111_hires_parameters_load():
    text = ("masterpiece, a castle\nNegative prompt: blurry\nSteps: 28, Sampler: DPM++ 2M, Schedule type: Karras, "
            "CFG scale: 6.5, Seed: 123, Size: 512x768, Model hash: abc, Model: dreamshaper, "
            "Denoising strength: 0.45, Hires upscale: 2, Hires steps: 12, Hires upscaler: R-ESRGAN 4x+, "
            "Version: v1.10.1")
    req, skipped = request_from_parameters(text)
    assert (req.hires_scale, req.hires_steps, req.hires_strength) == (2.0, 12, 0.45)
    assert req.hires_upscaler == "Lanczos" and skipped == ["Hires upscaler R-ESRGAN 4x+ (Lanczos used)"]
    resized, _ = request_from_parameters(text.replace("Hires upscale: 2", "Hires resize: 1024x1536")
                                         .replace("R-ESRGAN 4x+", "Latent (bicubic antialiased)"))
    assert resized.hires_scale == 2.0 and resized.hires_upscaler == "Latent (bicubic antialiased)"
    other, skipped = request_from_parameters(text.replace("Version", "Hires sampler: Euler, Hires prompt: x, Version"))
    assert skipped == ["Hires sampler", "Hires prompt", "Hires upscaler R-ESRGAN 4x+ (Lanczos used)"]
    plain, _ = request_from_parameters("a cat\nSteps: 20, Seed: 1, Size: 512x512, Denoising strength: 0.7")
    assert plain.hires_scale is None


def test_every_upscaler_runs(tiny_manager):
    for upscaler in UPSCALERS:
        item = run(tiny_manager, hires_scale=1.25, hires_upscaler=upscaler, hires_steps=1,
                   num_inference_steps=1).images[0]
        assert item.image.size == (80, 80), upscaler
