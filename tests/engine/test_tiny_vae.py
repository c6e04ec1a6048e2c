"""TAESD on a tiny random AutoencoderTiny: previews use it, Fast decode changes the image and says so, encoding stays."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engine import cli
from engine.faces.gender import GenderRequest, gender_swap
from engine.faces.portrait import find_face_area
from engine.files import pnginfo
from engine.image.generate import image_to_image, inpaint, request_from_parameters, text_to_image
from engine.image.preview import latents_to_preview
from engine.image.request import ImageRequest, RunControl
from engine.image.steps import step_callback
from engine.pipeline import tiny_vae
from engine.pipeline.manager import PipelineManager, RuntimeOptions

REQ = dict(prompt="a red apple", num_inference_steps=3, width=64, height=64, seed=7, sampler="Euler")


def tiny_taesd() -> torch.nn.Module:
    """TAESD's layout (4 blocks, 8x upscale) at 8 channels a block: the real one has 64."""
    from diffusers import AutoencoderTiny

    torch.manual_seed(0)
    return AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                           num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1)).eval()


def arr(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def taesd_folder(tmp_path_factory) -> Path:
    weights = tmp_path_factory.mktemp("weights")
    tiny_taesd().save_pretrained(weights / "taesd")
    return weights


@pytest.fixture
def with_taesd(tiny_manager, taesd_folder, monkeypatch):
    """The shared tiny model with TAESD loaded from a weights/taesd folder, for this test only."""
    loader = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"), weights_dir=taesd_folder)
    monkeypatch.setattr(tiny_manager, "_tiny_vae", loader.taesd())
    return tiny_manager


def test_weights_taesd_is_found_and_loaded_once(taesd_folder, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert tiny_vae.find_taesd(taesd_folder) == str((taesd_folder / "taesd").resolve())
    (tmp_path / "taesd").mkdir()
    (tmp_path / "taesd" / "config.json").write_text('{"_class_name": "AutoencoderTiny"}')
    assert tiny_vae.find_taesd(tmp_path) is None  # a config without weights
    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"), weights_dir=taesd_folder)
    assert manager.taesd_available() and manager.taesd() is manager.taesd()
    assert manager._base is None  # TAESD loads without the model


def test_previews_are_taesd_decodes_of_the_latents(with_taesd):
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    maker = with_taesd.step_preview()
    updates = []
    callback = step_callback(0, 1, updates.append, RunControl(), preview_maker=maker)
    callback(SimpleNamespace(num_timesteps=1, _interrupt=False), 0, None, {"latents": latents})
    preview = updates[0].preview
    expected = tiny_vae.decode_unet_latents(with_taesd.taesd(), latents)[0]
    assert preview.size == (64, 64)
    assert np.abs(arr(preview) - (expected.permute(1, 2, 0).numpy() + 1) * 127.5).max() <= 1
    assert not np.array_equal(arr(preview), arr(latents_to_preview(latents[0].numpy())))


def test_large_previews_decode_small_and_show_at_the_output_size(with_taesd):
    latents = torch.randn(1, 4, 64, 40, generator=torch.Generator().manual_seed(2))
    preview = with_taesd.step_preview()(latents)
    small = torch.nn.functional.interpolate(latents, size=(32, 20), mode="bilinear", antialias=True)
    expected = tiny_vae.decode_unet_latents(with_taesd.taesd(), small)[0]
    assert preview.size == (320, 512)
    shrunk = arr(preview.resize((160, 256), resample=0))  # nearest: the decoded pixels back
    assert np.abs(shrunk - (expected.permute(1, 2, 0).numpy() + 1) * 127.5).mean() < 8


def test_a_run_previews_with_taesd_at_the_image_size(with_taesd):
    previews = []
    text_to_image(with_taesd, ImageRequest(**REQ), on_step=lambda u: previews.append(u.preview))
    shown = [p for p in previews if p is not None]
    assert shown and shown[-1].size == (64, 64)


def test_previews_fall_back_to_the_approximation_without_taesd(without_taesd):
    assert without_taesd.step_preview() is None
    previews = []
    text_to_image(without_taesd, ImageRequest(**REQ), on_step=lambda u: previews.append(u.preview))
    assert previews[-1] is not None and previews[-1].size == (64, 64)


def test_fast_decode_changes_the_image_says_so_and_reads_back(with_taesd):
    plain = text_to_image(with_taesd, ImageRequest(**REQ)).images[0]
    fast = text_to_image(with_taesd, ImageRequest(**REQ, fast_decode=True)).images[0]
    again = text_to_image(with_taesd, ImageRequest(**REQ, fast_decode=True)).images[0]
    assert not np.array_equal(arr(plain.image), arr(fast.image))
    assert np.array_equal(arr(fast.image), arr(again.image))  # same seed, same pixels
    assert pnginfo.parse_parameters(fast.parameters)["VAE Decoder"] == "TAESD"
    assert "VAE Decoder" not in pnginfo.parse_parameters(plain.parameters)
    assert request_from_parameters(fast.parameters)[0].fast_decode is True
    assert request_from_parameters(plain.parameters)[0].fast_decode is False


def test_fast_decode_keeps_the_full_vae_for_encoding(with_taesd):
    base = with_taesd.base()
    vae = tiny_vae.FastDecodeVAE(base.vae, with_taesd.taesd())
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    assert torch.equal(vae.encode(image).latent_dist.mean, base.vae.encode(image).latent_dist.mean)
    latents = torch.randn(1, 4, 8, 8)
    decoded = vae.decode(latents / base.vae.config.scaling_factor).sample
    assert torch.allclose(decoded, with_taesd.taesd().decode(latents).sample.clamp(-1, 1))
    start = text_to_image(with_taesd, ImageRequest(**REQ)).images[0].image
    result = image_to_image(with_taesd, ImageRequest(**REQ, strength=0.5, fast_decode=True), start).images[0]
    assert result.image.size == start.size and "VAE Decoder: TAESD" in result.parameters


def test_inpaint_with_fast_decode_keeps_every_pixel_outside_the_mask(with_taesd, photo_64):
    from PIL import Image

    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    result = inpaint(with_taesd, ImageRequest(**REQ, mask_blur=0, fast_decode=True), photo_64, mask).images[0]
    outside = np.asarray(mask) == 0
    assert np.array_equal(arr(result.image)[outside], arr(photo_64)[outside])
    assert not np.array_equal(arr(result.image)[~outside], arr(photo_64)[~outside])


def test_face_tab_with_fast_decode_keeps_the_background(with_taesd, astronaut):
    req = GenderRequest(direction="man", variants=1, num_inference_steps=2, size=64, sampler="Euler", seed=4,
                        fast_decode=True)
    variant = gender_swap(with_taesd, req, astronaut).variants[0]
    outside = np.asarray(find_face_area(astronaut).mask) == 0
    assert np.array_equal(arr(variant.image)[outside], arr(astronaut)[outside])
    assert pnginfo.parse_parameters(variant.parameters)["VAE Decoder"] == "TAESD"


def test_fast_decode_without_taesd_says_where_to_put_it(without_taesd, astronaut):
    with pytest.raises(ValueError, match="Fast decode needs TAESD.*weights/taesd.*Downloads"):
        text_to_image(without_taesd, ImageRequest(**REQ, fast_decode=True))
    with pytest.raises(ValueError, match="Fast decode needs TAESD"):
        gender_swap(without_taesd, GenderRequest(direction="man", variants=1, size=64, fast_decode=True), astronaut)


def test_cli_fast_decode_writes_taesd_into_png_info_or_exits_2(tmp_path, taesd_folder, monkeypatch, capsys):
    from huggingface_hub import constants

    from engine.pipeline.models import WEIGHTS_DIR

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    out = tmp_path / "a.png"
    args = ["txt2img", "--model", "tiny", "--prompt", "an apple", "--steps", "2", "--width", "64", "--height", "64",
            "--out", str(out), "--fast-decode"]
    if tiny_vae.find_taesd(WEIGHTS_DIR) is None:  # weights/ of a checkout holds no TAESD
        assert cli.main(args) == 2
        assert "Fast decode needs TAESD" in capsys.readouterr().err
    # the same TAESD as a snapshot in the Hugging Face cache, where the CLI's manager looks next
    snapshot = tmp_path / "hub" / "models--madebyollin--taesd" / "snapshots" / ("a" * 40)
    tiny_taesd().save_pretrained(snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert cli.main(args) == 0
    assert "VAE Decoder: TAESD" in pnginfo.read_parameters(out)


def test_cli_few_step_turns_fast_decode_on_unless_told_not_to(tmp_path, tiny_manager, monkeypatch, capsys):
    from huggingface_hub import constants

    from tests.engine import lora_files as lf
    from tests.engine.test_downloads import fake_cache

    lf.write_lora(tmp_path / "Lora", "lcm-lora-sdv1-5", lf.kohya_lora(tiny_manager.base(), seed=3))
    tiny_taesd().save_pretrained(fake_cache(tmp_path / "hub", "madebyollin/taesd", {}))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    args = ["txt2img", "--model", "tiny", "--prompt", "an apple", "--width", "64", "--height", "64", "--few-step",
            "--lora-dir", str(tmp_path / "Lora"), "--out"]
    assert cli.main([*args, str(tmp_path / "on.png")]) == 0
    assert "decoded by TAESD" in capsys.readouterr().err
    assert cli.main([*args, str(tmp_path / "off.png"), "--no-fast-decode"]) == 0
    on, off = (pnginfo.parse_parameters(pnginfo.read_parameters(tmp_path / f"{n}.png")) for n in ("on", "off"))
    assert on["VAE Decoder"] == "TAESD" and "VAE Decoder" not in off
    assert on["Sampler"] == off["Sampler"] == "LCM" and on["Steps"] == "4"


def test_walk_and_animate_frames_decode_with_taesd_and_say_so(with_taesd, tmp_path):
    from PIL import Image

    from engine import video
    from engine.video.animate import animate
    from engine.video.animate.request import AnimateRequest
    from engine.video.run_folder import RunPaths
    from engine.video.walk import latent_walk
    from engine.video.walk_request import WalkRequest

    settings = dict(prompts=["a cat", "a dog"], seeds=[1, 2], num_frames=3, num_inference_steps=2, width=64,
                    height=64, sampler="Euler", fps=8)
    plain = latent_walk(with_taesd, WalkRequest(**settings), RunPaths.in_folder(tmp_path / "a", "walk"))
    fast = latent_walk(with_taesd, WalkRequest(**settings, fast_decode=True), RunPaths.in_folder(tmp_path / "b", "walk"))
    assert not np.array_equal(arr(Image.open(plain.frames[1])), arr(Image.open(fast.frames[1])))
    assert video.read_metadata(fast.video)["fast_decode"] is True
    req = AnimateRequest(prompts={0: "a forest"}, num_frames=2, cadence=1, num_inference_steps=2, width=64,
                         height=64, fast_decode=True)
    result = animate(with_taesd, req, RunPaths(frames=tmp_path / "anim-frames", video=tmp_path / "anim.mp4"))
    assert video.read_metadata(result.video)["fast_decode"] is True
