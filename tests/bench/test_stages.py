"""The per-stage timer on the tiny model: stages add up to the image's time, results are unchanged, and every
timed method is put back afterwards."""
import numpy as np
import pytest

from bench.common import image_request
from bench.stages import STAGES, StageClock, staged_image, timed_stages


def tiny_request(steps: int = 2):
    from dataclasses import replace

    return replace(image_request(64, steps), sampler="Euler")


def test_stages_sum_to_the_image_time_and_count_every_unet_call(tiny_manager, tmp_path):
    split = staged_image(tiny_manager, tiny_request(3), tmp_path)
    for stage in ("text_encoder", "unet", "vae", "write"):
        assert split[stage] > 0, stage
    assert split["unet_calls"] == 3  # CFG runs both halves in one call a step
    assert split["other"] >= 0
    assert sum(split[s] for s in STAGES) + split["other"] == pytest.approx(split["total"])
    assert split["image_s"] <= split["total"]
    assert (tmp_path / "image.png").is_file()
    assert split["backend"] == "PyTorch"


def test_timers_change_no_pixel_and_are_removed_afterwards(tiny_manager, tmp_path):
    from engine.files import pnginfo
    from engine.image.generate import text_to_image

    watermarked = pnginfo._watermarked
    encoder = tiny_manager.base().text_encoder
    staged_image(tiny_manager, tiny_request(), tmp_path)
    assert "pipeline" not in vars(tiny_manager)
    assert "forward" not in vars(encoder)
    assert pnginfo._watermarked is watermarked
    with timed_stages(tiny_manager):
        timed = np.asarray(text_to_image(tiny_manager, tiny_request()).images[0].image)
    plain = np.asarray(text_to_image(tiny_manager, tiny_request()).images[0].image)
    assert np.array_equal(timed, plain)


def test_a_failing_run_still_restores_the_methods():
    class Part:
        def forward(self, x):
            raise RuntimeError("boom")

    part = Part()
    clock = StageClock()
    clock.wrap(part, "forward", "unet")
    with pytest.raises(RuntimeError):
        part.forward(1)
    clock.restore()
    assert "forward" not in vars(part)
    assert clock.calls["unet"] == 1 and clock.seconds["unet"] >= 0
    assert clock.breakdown(2.0)["other"] == pytest.approx(2.0 - clock.seconds["unet"])
