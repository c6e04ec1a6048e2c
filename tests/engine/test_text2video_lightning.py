"""AnimateDiff-Lightning adapters: told by name and contents, their scheduler, steps and CFG applied and recorded."""
import json

import pytest
import torch

from engine import video
from engine.video.motion import adapter as motion_adapter
from engine.video.motion import lightning
from engine.video.motion.text2video import Text2VideoRequest, defaults_with_adapter, text_to_video
from engine.video.run_folder import RunPaths


@pytest.mark.parametrize("name, steps", [
    ("animatediff_lightning_1step_diffusers.safetensors", 1),
    ("motion/animatediff_lightning_2step_diffusers.safetensors", 2),
    ("AnimateDiff-Lightning-4step", 4),
    ("animatediff_lightning_8step_comfyui.safetensors", 8),
    ("animatediff_lightning_3step_diffusers.safetensors", None),
    ("mm_sd_v15_v2.safetensors", None),
    (None, None),
])
def test_lightning_adapters_are_told_by_their_file_name(name, steps):
    found = lightning.recognise(name)
    assert (found.num_inference_steps if found else None) == steps
    if found:
        assert (found.sampler, found.guidance_scale) == ("Euler", 1.0)
        assert found.experimental == (steps == 1) and ("experimental" in found.label) == (steps == 1)


def test_choosing_a_lightning_adapter_brings_its_steps_sampler_and_cfg():
    start = Text2VideoRequest(num_inference_steps=10)
    got = defaults_with_adapter(start, "motion/animatediff_lightning_4step_diffusers.safetensors")
    assert (got.num_inference_steps, got.sampler, got.guidance_scale) == (4, "Euler", 1.0)
    plain = defaults_with_adapter(start, "motion/mm_sd_v15_v2.safetensors")
    assert (plain.num_inference_steps, plain.sampler, plain.guidance_scale) == (10, "DDIM", 7.5)


@pytest.fixture
def lightning_file(tmp_path):
    """A tiny-shaped Lightning file: the tiny adapter's own state dict under the published name."""
    from safetensors.torch import save_file

    path = tmp_path / "motion" / "animatediff_lightning_2step_diffusers.safetensors"
    path.parent.mkdir()
    save_file(motion_adapter.build_tiny_adapter().state_dict(), path)
    return path


def test_a_lightning_file_is_read_by_its_contents(lightning_file, tmp_path):
    assert motion_adapter.diffusers_layout(lightning_file)
    source = motion_adapter.resolve_adapter(str(lightning_file), "tiny", tmp_path)
    loaded = motion_adapter.load_adapter(source, torch.float32)
    expected = motion_adapter.build_tiny_adapter().state_dict()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in expected.items())
    other = tmp_path / "motion" / "animatediff_lightning_4step_diffusers.safetensors"
    from safetensors.torch import save_file
    save_file({motion_adapter.DIFFUSERS_PE_KEY: torch.zeros(1, 32, 5)}, other)
    with pytest.raises(ValueError, match="shape this app doesn't know"):
        motion_adapter.load_adapter(motion_adapter.resolve_adapter(str(other), "tiny", tmp_path), torch.float32)


def test_a_clip_on_a_lightning_adapter_runs_its_schedule_and_says_so(tiny_manager, lightning_file, tmp_path):
    req = defaults_with_adapter(Text2VideoRequest(prompt="a cat walking", num_frames=8, width=64, height=64, seed=1),
                                str(lightning_file))
    result = text_to_video(tiny_manager, req, RunPaths.in_folder(tmp_path / "clip", "clip"))
    settings = video.read_metadata(result.video)
    assert result.steps_done == 2 and settings["sampler"] == "Euler" and settings["guidance_scale"] == 1.0
    assert settings["scheduler_settings"]["timestep_spacing"] == "trailing" and settings["lightning_steps"] == 2
    assert settings["motion_adapter"] == "animatediff_lightning_2step_diffusers"
    assert json.loads(result.settings.read_text())["scheduler_settings"]["beta_schedule"] == "linear"
    assert not result.notes
    other = text_to_video(tiny_manager, Text2VideoRequest(**{**req.__dict__, "num_inference_steps": 3}),
                          RunPaths.in_folder(tmp_path / "more", "more"))
    assert any("distilled for those settings" in note for note in other.notes)


def test_the_cli_takes_a_lightning_adapters_settings(lightning_file, tmp_path, capsys):
    from engine.cli import main

    out = tmp_path / "clip.mp4"
    assert main(["text2video", "--model", "tiny", "--prompt", "a cat walking", "--frames", "8", "--width", "64",
                 "--height", "64", "--seed", "1", "--motion-adapter", str(lightning_file), "--out", str(out)]) == 0
    settings = video.read_metadata(out)
    assert (settings["num_inference_steps"], settings["sampler"], settings["guidance_scale"]) == (2, "Euler", 1.0)
