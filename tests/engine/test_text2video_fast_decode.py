"""Fast decode and TAESD previews in Text to video, on the tiny model, the tiny adapter and a tiny random TAESD."""
import numpy as np
import pytest
import torch
from PIL import Image

from engine import video
from engine.files import pnginfo
from engine.image.preview import latents_to_preview
from engine.image.request import RunControl
from engine.pipeline import tiny_vae
from engine.video.motion import decoding
from engine.video.motion import resume as saved_steps
from engine.video.motion.text2video import (
    Text2VideoRequest,
    defaults_with_adapter,
    resume_text_to_video,
    text_to_video,
)
from engine.video.run_folder import RunPaths
from tests.engine.test_tiny_vae import tiny_taesd

CLIP = dict(prompt="a cat walking", num_frames=8, num_inference_steps=3, width=64, height=64, seed=3)


@pytest.fixture
def with_taesd(tiny_manager, monkeypatch):
    monkeypatch.setattr(tiny_manager, "_tiny_vae", tiny_taesd())
    return tiny_manager


@pytest.fixture
def saved_latents(monkeypatch):
    """The latents after each step, as the run saves them for Resume."""
    seen = []
    real = saved_steps.save

    def save(path, data):
        seen.append(data["latents"].clone())
        real(path, data)
    monkeypatch.setattr(saved_steps, "save", save)
    return seen


def make(manager, folder, on_step=None, control=None, **fields):
    return text_to_video(manager, Text2VideoRequest(**{**CLIP, **fields}), RunPaths.in_folder(folder, "clip"),
                         on_step, control)


def pixels(result) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in result.frames]


def as_frames(images: torch.Tensor) -> list[np.ndarray]:
    """-1..1 images to the uint8 frames diffusers' video processor makes of them."""
    scaled = (images / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().numpy()
    return list((scaled * 255).round().astype(np.uint8))


def test_fast_decode_is_taesd_over_the_same_latents_and_says_so(with_taesd, tmp_path, saved_latents):
    plain = make(with_taesd, tmp_path / "plain")
    plain_latents = saved_latents[-1]
    fast = make(with_taesd, tmp_path / "fast", fast_decode=True)
    assert torch.equal(saved_latents[-1], plain_latents)  # the denoising is the same; only the decoder differs
    frames = plain_latents[0].permute(1, 0, 2, 3)  # (frames, 4, h, w)
    vae = with_taesd.base().vae
    with torch.no_grad():
        by_vae = as_frames(vae.decode(1 / vae.config.scaling_factor * frames).sample)  # as diffusers scales
    by_taesd = as_frames(tiny_vae.decode_unet_latents(with_taesd.taesd(), frames))
    assert all(np.array_equal(a, b) for a, b in zip(pixels(plain), by_vae, strict=True))  # off: the VAE, as before
    assert all(np.array_equal(a, b) for a, b in zip(pixels(fast), by_taesd, strict=True))
    assert not np.array_equal(pixels(plain)[4], pixels(fast)[4])
    settings = video.read_metadata(fast.video)
    assert settings["fast_decode"] is True and settings["VAE Decoder"] == "TAESD"
    info = pnginfo.parse_parameters(Image.open(fast.frames[4]).info["parameters"])
    assert info["VAE Decoder"] == "TAESD" and info["Frame"] == "5 of 8" and info["Seed"] == "3"
    assert "VAE Decoder" not in video.read_metadata(plain.video)
    assert any("TAESD decoded" in note for note in fast.notes) and not any("TAESD" in n for n in plain.notes)
    assert "VAE Decoder" not in pnginfo.parse_parameters(Image.open(plain.frames[0]).info["parameters"])


def test_previews_are_the_middle_frame_by_taesd_when_present(with_taesd, tmp_path, saved_latents):
    previews = []
    make(with_taesd, tmp_path / "clip", on_step=lambda update: previews.append(update.preview))
    assert len(previews) == len(saved_latents) == 3
    show = tiny_vae.previewer(with_taesd.taesd())
    for preview, latents in zip(previews, saved_latents, strict=True):
        expected = show(latents[:, :, 4])
        assert preview.size == (64, 64) and np.array_equal(np.asarray(preview), np.asarray(expected))


def test_previews_fall_back_to_frame_0s_approximation(without_taesd, tmp_path, saved_latents):
    previews = []
    make(without_taesd, tmp_path / "clip", on_step=lambda update: previews.append(update.preview))
    expected = latents_to_preview(saved_latents[0][0, :, 0].float().numpy())
    assert np.array_equal(np.asarray(previews[0]), np.asarray(expected))


def test_taesd_decodes_the_frames_in_bounded_chunks(with_taesd, tmp_path, monkeypatch):
    monkeypatch.setitem(decoding.TAESD_CHUNK, "cpu", 3)
    taesd, batches = with_taesd.taesd(), []
    decode = taesd.decode
    monkeypatch.setattr(taesd, "decode", lambda latents, *a, **k: batches.append(len(latents)) or decode(latents))
    make(with_taesd, tmp_path / "clip", fast_decode=True)
    assert batches == [3, 3, 2]


def test_without_taesd_fast_decode_is_refused_in_one_sentence(without_taesd, tmp_path):
    with pytest.raises(ValueError, match=r"^Fast decode needs TAESD.*weights/taesd") as caught:
        make(without_taesd, tmp_path / "clip", fast_decode=True)
    assert str(caught.value).count(". ") <= 1
    assert not (tmp_path / "clip").exists()  # refused before anything was written


@pytest.mark.parametrize("cut_with, resume_with", [(False, True), (True, False), (True, None)])
def test_resume_keeps_working_with_fast_decode_on_and_off(with_taesd, tmp_path, cut_with, resume_with):
    control = RunControl()
    cut = make(with_taesd, tmp_path / "cut", lambda u: control.stop() if u.step >= 1 else None, control,
               fast_decode=cut_with)
    assert cut.interrupted and cut.steps_done == 1
    asked = None if resume_with is None else Text2VideoRequest(**CLIP, fast_decode=resume_with)
    resumed = resume_text_to_video(with_taesd, tmp_path / "cut", asked=asked)
    decoded_by_taesd = cut_with if resume_with is None else resume_with
    whole = make(with_taesd, tmp_path / "whole", fast_decode=decoded_by_taesd)
    assert resumed.steps_done == 3 and not resumed.interrupted
    assert all(np.array_equal(a, b) for a, b in zip(pixels(whole), pixels(resumed), strict=True))
    assert (video.read_metadata(resumed.video).get("VAE Decoder") == "TAESD") == decoded_by_taesd


def test_a_lightning_adapter_starts_with_fast_decode_where_taesd_is():
    start = Text2VideoRequest()
    lightning = "motion/animatediff_lightning_4step_diffusers.safetensors"
    assert defaults_with_adapter(start, lightning, taesd=True).fast_decode
    assert not defaults_with_adapter(start, lightning, taesd=False).fast_decode
    assert not defaults_with_adapter(start, "motion/mm_sd_v15_v2.safetensors", taesd=True).fast_decode


def test_the_cli_flag_and_a_lightning_adapter_decode_with_taesd_and_a_missing_one_is_one_line(tmp_path, capsys, monkeypatch):
    from safetensors.torch import save_file

    from engine.cli import main
    from engine.video.motion import adapter as motion_adapter

    flags = ["text2video", "--model", "tiny", "--prompt", "a cat walking", "--frames", "8", "--steps", "2",
             "--width", "64", "--height", "64", "--seed", "1"]
    tiny_taesd().save_pretrained(tmp_path / "taesd")
    monkeypatch.setattr(tiny_vae, "find_taesd", lambda weights_dir: str(tmp_path / "taesd"))
    assert main([*flags, "--fast-decode", "--out", str(tmp_path / "fast.mp4")]) == 0
    assert video.read_metadata(tmp_path / "fast.mp4")["VAE Decoder"] == "TAESD"
    lightning = tmp_path / "animatediff_lightning_2step_diffusers.safetensors"
    save_file(motion_adapter.build_tiny_adapter().state_dict(), lightning)
    capsys.readouterr()
    assert main([*flags, "--motion-adapter", str(lightning), "--out", str(tmp_path / "lightning.mp4")]) == 0
    assert "Fast decode is on with the Lightning adapter" in capsys.readouterr().err
    assert video.read_metadata(tmp_path / "lightning.mp4")["VAE Decoder"] == "TAESD"
    monkeypatch.setattr(tiny_vae, "find_taesd", lambda weights_dir: None)
    capsys.readouterr()
    assert main([*flags, "--fast-decode", "--out", str(tmp_path / "refused.mp4")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Fast decode needs TAESD" in err
