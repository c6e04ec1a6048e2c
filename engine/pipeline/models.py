"""Where a model comes from (hub id, diffusers folder, single file in weights/, or tiny) and how to load it."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.text.limits import excerpt

REPO_ROOT = Path(__file__).resolve().parents[2]
WEIGHTS_DIR = REPO_ROOT / "weights"
TINY = "tiny"
DEFAULT_HUB_MODEL = "SG161222/Realistic_Vision_V6.0_B1_noVAE"
DEFAULT_HUB_VAE = "stabilityai/sd-vae-ft-mse"  # the VAE the noVAE release is meant to be used with
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
FIX = "put a .safetensors checkpoint in weights/ or choose the tiny model"


@dataclass(frozen=True)
class ModelSource:
    """A resolved model choice: what it is and where its files are."""

    name: str  # the name the user chose, shown in the UI and saved in PNG info
    kind: str  # "tiny", "hub", "folder" or "file"
    location: str

    @property
    def label(self) -> str:
        """A short name for PNG info's `Model:` field."""
        if self.kind == "file":
            return Path(self.location).stem
        return self.name.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ModelDefaults:
    """The size and steps a model answers well at: forms and the CLI start from these."""

    width: int = 512  # SD 1.5's native resolution
    height: int = 512
    num_inference_steps: int = 20  # A1111's default


# The tiny test model makes noise at any size; at 512 px its attention over 4096 positions takes ~35 s an
# image on 2 cores, at 128 px about half a second.
TINY_DEFAULTS = ModelDefaults(width=128, height=128)


def model_defaults(name: str | None) -> ModelDefaults:
    """Size and steps to offer for a model, so the offline demo model answers in about a second."""
    return TINY_DEFAULTS if (name or "").strip() == TINY else ModelDefaults()


def local_checkpoints(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    """Single-file checkpoints the user dropped into weights/, for the model menu."""
    if not weights_dir.is_dir():
        return []
    return sorted(p.name for p in weights_dir.iterdir() if p.suffix.lower() in CHECKPOINT_SUFFIXES)


def model_choices(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    """The menu: local checkpoints first, then the hub default, then tiny."""
    return [*local_checkpoints(weights_dir), DEFAULT_HUB_MODEL, TINY]


def default_model(weights_dir: Path = WEIGHTS_DIR) -> str:
    """Prefer a local Realistic Vision file, then any local file, then the hub default."""
    local = local_checkpoints(weights_dir)
    preferred = [name for name in local if "realistic" in name.lower()]
    return (preferred or local or [DEFAULT_HUB_MODEL])[0]


def resolve_model(name: str, weights_dir: Path = WEIGHTS_DIR) -> ModelSource:
    """Turn a menu entry, path or hub id into a ModelSource, or say why it can't be used."""
    name = (name or "").strip()
    if not name:
        raise ValueError(f"No model was chosen; pick one from the list or {FIX}.")
    if name == TINY:
        return ModelSource(TINY, "tiny", TINY)
    for candidate in (weights_dir / name, Path(name), REPO_ROOT / name):
        if candidate.is_file():
            if candidate.suffix.lower() not in CHECKPOINT_SUFFIXES:
                raise ValueError(f"{excerpt(name)} is not a .safetensors or .ckpt checkpoint.")
            return ModelSource(name, "file", str(candidate.resolve()))
        if candidate.is_dir():
            if not (candidate / "model_index.json").is_file():
                raise ValueError(f"{excerpt(name)} is a folder without model_index.json, so it is not a diffusers "
                                 "model.")
            return ModelSource(name, "folder", str(candidate.resolve()))
    if HUB_ID.match(name) and not name.startswith(("weights/", "./", "../")):
        return ModelSource(name, "hub", name)
    raise ValueError(f"Model {excerpt(name)} was not found: {FIX}.")


def load_pipeline(source: ModelSource, dtype: torch.dtype):
    """Load the base text-to-image pipeline for a source; every failure becomes one plain sentence."""
    from engine.pipeline import components

    if source.kind == "tiny":
        return components.build_tiny_pipeline(dtype=dtype)
    if source.kind == "file":
        return components.load_single_file(source.location, dtype=dtype)
    return _load_pretrained(source, dtype)


def _load_pretrained(source: ModelSource, dtype: torch.dtype):
    """Diffusers-format folder or hub id; the default hub model gets its intended VAE."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline

    offline = source.kind == "hub" and (hub_offline() or not hub_reachable())
    if offline and not hub_cached(source.location):
        raise ValueError(f"Could not load {source.name}: the Hugging Face hub can't be reached and the model is not "
                         f"in the local cache. Connect to the network, {FIX}.")
    extra = {"local_files_only": True} if offline else {}
    try:
        if source.location == DEFAULT_HUB_MODEL:
            extra["vae"] = AutoencoderKL.from_pretrained(DEFAULT_HUB_VAE, dtype=dtype,
                                                         local_files_only=extra.get("local_files_only", False))
        return StableDiffusionPipeline.from_pretrained(
            source.location, dtype=dtype, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False, **extra)
    except Exception as exc:  # network, missing files and bad configs all surface differently
        reason = str(exc).strip().splitlines()[0][:200].rstrip(".") if str(exc).strip() else type(exc).__name__
        raise ValueError(f"Could not load {source.name} ({reason}); {FIX}.") from exc


def hub_offline() -> bool:
    """HF_HUB_OFFLINE=1 means never touch the network."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick look before a download, so an offline start fails in seconds instead of after long retries."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
        return isinstance(try_to_load_from_cache(repo_id, "model_index.json"), str)
    except Exception:
        return False
