"""Stable Diffusion 1.5 components: random pipelines from the preset configs, and offline single-file loading."""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

PRESETS_DIR = Path(__file__).resolve().parents[2] / "presets"
SD15_CONFIG_DIR: Path = PRESETS_DIR / "sd15"
TINY_CONFIG_DIR: Path = PRESETS_DIR / "tiny"

SAFETENSORS_SUFFIX = ".safetensors"
UNET_MARKER = "model.diffusion_model.input_blocks."  # SD 3 and Flux files have no input_blocks
TEXT_ENCODER_PREFIX = "cond_stage_model.transformer."
CONFIG_METADATA = "diffusion_studio.config"  # "tiny" in files trained from the tiny model (Full DreamBooth)
# Key prefixes that identify architectures this app cannot run, with the sentence ending that names them.
FOREIGN_PREFIXES = {
    "conditioner.embedders.": "is an SDXL checkpoint; Diffusion Studio runs SD 1.5-class models only",
    "cond_stage_model.model.": "is a Stable Diffusion 2 checkpoint; Diffusion Studio runs SD 1.5-class models only",
}


def load_tokenizer(config_dir: Path = SD15_CONFIG_DIR) -> CLIPTokenizer:
    """Load the CLIP tokenizer from the preset files, so prompts can be tokenized with no model hub."""
    return CLIPTokenizer.from_pretrained(Path(config_dir) / "tokenizer", local_files_only=True)


def build_from_configs(config_dir: Path, seed: int = 0, dtype=torch.float32) -> StableDiffusionPipeline:
    """Build a randomly initialised pipeline from a config folder, for tests and benchmarks without weights."""
    config_dir = Path(config_dir)
    with torch.random.fork_rng(devices=[]):
        # Seed each model on its own so that its weights do not depend on the build order.
        torch.manual_seed(seed)
        unet = _cast(UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(config_dir / "unet")), dtype)
        torch.manual_seed(seed + 1)
        vae = _cast(AutoencoderKL.from_config(AutoencoderKL.load_config(config_dir / "vae")), dtype)
        torch.manual_seed(seed + 2)
        text_config = CLIPTextConfig.from_pretrained(config_dir / "text_encoder", local_files_only=True)
        text_encoder = _cast(CLIPTextModel(text_config), dtype)
    scheduler = PNDMScheduler.from_pretrained(config_dir, subfolder="scheduler", local_files_only=True)
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=load_tokenizer(config_dir),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    for model in (unet, vae, text_encoder):
        model.eval()
    return pipe


def build_tiny_pipeline(dtype=torch.float32) -> StableDiffusionPipeline:
    """Build the tiny random pipeline that tests, CI and offline demos run in well under a second a step."""
    return build_from_configs(TINY_CONFIG_DIR, dtype=dtype)


def load_single_file(path, dtype=torch.float32, config_dir: Path | None = None) -> StableDiffusionPipeline:
    """Load an original-layout SD 1.5 ``.safetensors``/``.ckpt`` with local configs only, so nothing is fetched.

    The configs are SD 1.5's unless given, or the tiny model's for a file trained from it.
    """
    path = Path(path)
    # 1. check the file cheaply before the full load
    _check_checkpoint_keys(path, _read_keys(path))
    config_dir = config_dir or _configs_named_in(path)
    # 2. load it with the local configs; `config=` keeps diffusers from guessing the model online
    try:
        pipe = StableDiffusionPipeline.from_single_file(
            str(path),
            config=str(config_dir),
            local_files_only=True,
            dtype=dtype,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    except Exception as error:
        raise ValueError(_load_error_sentence(path, error)) from error
    # 3. a tensor missing from the file can stay on the meta device without any error (seen for the text encoder)
    if any(_has_meta_tensors(model) for model in (pipe.unet, pipe.vae, pipe.text_encoder)):
        raise ValueError(_incomplete_sentence(path))
    return pipe


def _cast(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Cast only when needed: diffusers warns on every `.to(dtype)`, even a no-op one."""
    return model if model.dtype == dtype else model.to(dtype)


def _read_keys(path: Path) -> list[str]:
    """List the tensor names without reading the tensors, to reject wrong files before the slow load."""
    if not path.is_file():
        raise ValueError(f"Checkpoint file {path} does not exist; check the path or put the file in weights/.")
    try:
        if path.suffix.lower() == SAFETENSORS_SUFFIX:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                return list(handle.keys())
        state_dict = _load_pickled_state_dict(path)
        return [key for key, value in state_dict.items() if isinstance(value, torch.Tensor)]
    except Exception as error:
        raise ValueError(
            f"{path.name} is not a readable model checkpoint (it is corrupt, truncated or holds Python objects "
            "that are unsafe to load); download it again, preferably as .safetensors."
        ) from error


def _configs_named_in(path: Path) -> Path:
    """The tiny model's configs when the file's metadata says it was trained from it, else SD 1.5's."""
    if path.suffix.lower() == SAFETENSORS_SUFFIX:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            if (handle.metadata() or {}).get(CONFIG_METADATA) == "tiny":
                return TINY_CONFIG_DIR
    return SD15_CONFIG_DIR


def _load_pickled_state_dict(path: Path) -> dict:
    """Open a pickled checkpoint with weights_only and, for zip files, mmap so tensors stay on disk."""
    checkpoint = torch.load(str(path), map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    while isinstance(checkpoint, dict) and "state_dict" in checkpoint:
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict):
        raise TypeError("not a state dict")
    return checkpoint


def _check_checkpoint_keys(path: Path, keys: list[str]) -> None:
    """Name the architecture of a foreign checkpoint instead of failing deep inside the converter."""
    for prefix, sentence_end in FOREIGN_PREFIXES.items():
        if any(key.startswith(prefix) for key in keys):
            raise ValueError(f"{path.name} {sentence_end}.")
    if not any(key.startswith(UNET_MARKER) for key in keys):
        raise ValueError(
            f"{path.name} is not a Stable Diffusion 1.5 checkpoint in the original single-file layout; "
            "choose a full SD 1.5 model file, not a LoRA, VAE or embedding."
        )
    if not any(key.startswith(TEXT_ENCODER_PREFIX) for key in keys):
        raise ValueError(f"{path.name} has no CLIP text encoder weights; use a complete SD 1.5 checkpoint.")


def _has_meta_tensors(model: torch.nn.Module) -> bool:
    return any(tensor.is_meta for tensor in (*model.parameters(), *model.buffers()))


def _incomplete_sentence(path: Path) -> str:
    return f"{path.name} is an incomplete checkpoint (some weights are missing); download it again."


def _load_error_sentence(path: Path, error: Exception) -> str:
    """Turn a diffusers loading error into one sentence that says what to do."""
    message = str(error)
    if "meta tensor" in message or "appear to be missing" in message:
        return _incomplete_sentence(path)
    if "size mismatch" in message or "shape" in message:
        return (
            f"{path.name} does not match the SD 1.5 architecture (its tensor shapes differ, as in inpainting "
            "or other variant models); choose a standard SD 1.5 checkpoint."
        )
    return f"{path.name} could not be loaded as an SD 1.5 checkpoint ({type(error).__name__}); check the file."
