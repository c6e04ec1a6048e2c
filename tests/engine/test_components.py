"""The preset configs, the tiny pipeline and offline single-file loading (engine/pipeline/components.py)."""

from __future__ import annotations

import json
import socket

import pytest
import torch
from diffusers.loaders.single_file_utils import (
    convert_ldm_clip_checkpoint,
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
)
from safetensors.torch import save_file

from engine.pipeline.components import (
    SD15_CONFIG_DIR,
    TINY_CONFIG_DIR,
    build_from_configs,
    build_tiny_pipeline,
    load_single_file,
    load_tokenizer,
)
from engine.train.single_file import pipeline_to_original

PROMPT = "a photo of an astronaut riding a horse"
PROMPT_IDS = [49406, 320, 1125, 539, 550, 18376, 6765, 320, 4558, 49407]


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a connection fails, so a test passes only if nothing is fetched."""

    def refuse(*args, **kwargs):
        raise OSError("network access is disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_pipe():
    return build_tiny_pipeline()


@pytest.fixture(scope="module")
def written(tiny_pipe, tmp_path_factory):
    """The tiny pipeline saved as original-layout .safetensors and .ckpt files; returns (state dict, folder)."""
    folder = tmp_path_factory.mktemp("checkpoints")
    state_dict = pipeline_to_original(tiny_pipe)
    save_file(state_dict, folder / "tiny.safetensors")
    torch.save({"state_dict": state_dict}, folder / "tiny.ckpt")
    return state_dict, folder


def assert_one_sentence(error: pytest.ExceptionInfo) -> None:
    message = str(error.value)
    assert message.endswith(".") and "\n" not in message and ". " not in message, message


def test_offline_fixture_blocks_connections(offline):
    with pytest.raises(OSError, match="disabled"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)


# --- configs and tokenizer -------------------------------------------------------------------------------


def test_tokenizer_matches_clip_ids_offline(offline):
    tokenizer = load_tokenizer()
    assert tokenizer(PROMPT).input_ids == PROMPT_IDS
    assert tokenizer.model_max_length == 77
    assert tokenizer.pad_token == "<|endoftext|>"
    assert len(tokenizer) == 49408


def test_tiny_tokenizer_is_the_sd15_one(offline):
    assert load_tokenizer(TINY_CONFIG_DIR)(PROMPT).input_ids == PROMPT_IDS


def test_tokenizer_files_follow_the_hf_layout():
    folder = SD15_CONFIG_DIR / "tokenizer"
    assert (folder / "merges.txt").read_text(encoding="utf-8").splitlines()[0] == "#version: 0.2"
    assert len(json.loads((folder / "vocab.json").read_text(encoding="utf-8"))) == 49408


@pytest.mark.parametrize("config_dir", [SD15_CONFIG_DIR, TINY_CONFIG_DIR])
def test_scheduler_config_is_sd15s(config_dir):
    config = json.loads((config_dir / "scheduler" / "scheduler_config.json").read_text())
    assert config["_class_name"] == "PNDMScheduler"
    assert (config["beta_start"], config["beta_end"], config["beta_schedule"]) == (0.00085, 0.012, "scaled_linear")
    assert (config["steps_offset"], config["skip_prk_steps"], config["set_alpha_to_one"]) == (1, True, False)


def test_model_index_has_no_safety_checker():
    for config_dir in (SD15_CONFIG_DIR, TINY_CONFIG_DIR):
        index = json.loads((config_dir / "model_index.json").read_text())
        assert index["safety_checker"] == [None, None] and index["feature_extractor"] == [None, None]


# --- tiny pipeline ----------------------------------------------------------------------------------------


def test_tiny_build_is_deterministic(tiny_pipe, offline):
    again = build_from_configs(TINY_CONFIG_DIR, seed=0)
    other = build_from_configs(TINY_CONFIG_DIR, seed=1)
    for name in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(tiny_pipe, name).state_dict(), getattr(again, name).state_dict()
        assert all(torch.equal(ours[key], theirs[key]) for key in ours), name
    assert not torch.equal(tiny_pipe.unet.conv_in.weight, other.unet.conv_in.weight)


def test_tiny_build_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_pipeline()
    assert torch.equal(torch.rand(3), expected)


def test_tiny_pipeline_generates_64px(tiny_pipe, offline):
    assert tiny_pipe.vae_scale_factor == 8
    generator = torch.Generator().manual_seed(0)
    images = tiny_pipe(PROMPT, num_inference_steps=3, height=64, width=64, generator=generator, output_type="np").images
    assert images.shape == (1, 64, 64, 3)
    assert torch.isfinite(torch.from_numpy(images)).all()


def test_tiny_build_in_requested_dtype():
    pipe = build_tiny_pipeline(dtype=torch.bfloat16)
    assert {pipe.unet.dtype, pipe.vae.dtype, pipe.text_encoder.dtype} == {torch.bfloat16}


# --- original layout and single-file loading --------------------------------------------------------------


def test_original_layout_round_trips_through_diffusers_converters(tiny_pipe, written):
    original, _ = written
    converted = {
        "unet": convert_ldm_unet_checkpoint(original, tiny_pipe.unet.config),
        "vae": convert_ldm_vae_checkpoint(original, tiny_pipe.vae.config),
        "text_encoder": {k.removeprefix("text_model."): v for k, v in convert_ldm_clip_checkpoint(original).items()},
    }
    for name, state_dict in converted.items():
        expected = getattr(tiny_pipe, name).state_dict()
        assert state_dict.keys() == expected.keys(), name
        assert all(torch.equal(state_dict[key], expected[key]) for key in expected), name


def test_original_layout_uses_sd_prefixes(written):
    original, _ = written
    assert {key.split(".")[0] for key in original} == {"model", "first_stage_model", "cond_stage_model"}
    assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in original
    assert "model.diffusion_model.input_blocks.0.0.weight" in original


@pytest.mark.parametrize("name", ["tiny.safetensors", "tiny.ckpt"])
def test_single_file_loads_offline_bit_exact(written, name, offline):
    original, folder = written
    pipe = load_single_file(folder / name, config_dir=TINY_CONFIG_DIR)
    loaded = pipeline_to_original(pipe)
    assert loaded.keys() == original.keys()
    assert all(torch.equal(loaded[key], original[key]) for key in original)
    assert pipe.tokenizer(PROMPT).input_ids == PROMPT_IDS
    assert pipe.safety_checker is None
    assert type(pipe.scheduler).__name__ == "PNDMScheduler" and pipe.scheduler.config.steps_offset == 1


def test_half_precision_file_loads_in_requested_dtype(written, tmp_path, offline):
    original, _ = written
    save_file({key: tensor.half() for key, tensor in original.items()}, tmp_path / "half.safetensors")
    pipe = load_single_file(tmp_path / "half.safetensors", dtype=torch.float32, config_dir=TINY_CONFIG_DIR)
    assert {pipe.unet.dtype, pipe.vae.dtype, pipe.text_encoder.dtype} == {torch.float32}
    expected = original["model.diffusion_model.input_blocks.0.0.weight"].half().float()
    assert torch.equal(pipe.unet.conv_in.weight, expected)


# --- errors -----------------------------------------------------------------------------------------------


def test_missing_file(tmp_path, offline):
    with pytest.raises(ValueError, match="does not exist") as error:
        load_single_file(tmp_path / "nowhere.safetensors")
    assert_one_sentence(error)


@pytest.mark.parametrize("name", ["junk.safetensors", "junk.ckpt"])
def test_garbage_file(tmp_path, name, offline):
    (tmp_path / name).write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ValueError, match="not a readable model checkpoint") as error:
        load_single_file(tmp_path / name)
    assert_one_sentence(error)


@pytest.mark.parametrize("name", ["tiny.safetensors", "tiny.ckpt"])
def test_truncated_file(written, tmp_path, name, offline):
    _, folder = written
    data = (folder / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt, truncated") as error:
        load_single_file(tmp_path / name, config_dir=TINY_CONFIG_DIR)
    assert_one_sentence(error)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("conditioner.embedders.1.model.positional_embedding", "is an SDXL checkpoint"),
        ("cond_stage_model.model.token_embedding.weight", "is a Stable Diffusion 2 checkpoint"),
    ],
)
def test_other_architectures_are_named(tmp_path, key, expected, offline):
    path = tmp_path / "other.safetensors"
    save_file({key: torch.zeros(2), "model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match=expected) as error:
        load_single_file(path)
    assert_one_sentence(error)


def test_non_pipeline_file(tmp_path, offline):
    path = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down_blocks_0.lora_down.weight": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a Stable Diffusion 1.5 checkpoint") as error:
        load_single_file(path)
    assert_one_sentence(error)


@pytest.mark.parametrize(
    "dropped",
    [
        "model.diffusion_model.output_blocks.1.0.in_layers.2.weight",
        "first_stage_model.decoder.up.0.block.1.conv1.weight",
        "cond_stage_model.transformer.text_model.encoder.layers.1.mlp.fc1.weight",
    ],
)
def test_missing_tensor_is_incomplete(written, tmp_path, dropped, offline):
    original, _ = written
    path = tmp_path / "partial.safetensors"
    save_file({key: tensor for key, tensor in original.items() if key != dropped}, path)
    with pytest.raises(ValueError, match="incomplete checkpoint") as error:
        load_single_file(path, config_dir=TINY_CONFIG_DIR)
    assert_one_sentence(error)


def test_wrong_size_for_config(written, offline):
    _, folder = written
    with pytest.raises(ValueError, match="does not match the SD 1.5 architecture") as error:
        load_single_file(folder / "tiny.safetensors", config_dir=SD15_CONFIG_DIR)
    assert_one_sentence(error)
