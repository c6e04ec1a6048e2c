"""Keep identity: h94/IP-Adapter's full-face SD 1.5 adapter, fed with the face crop, loaded once and shared.

The adapter needs only its CLIP image encoder, no InsightFace, so it stays licence-clean. It is found in
`weights/` or in the Hugging Face cache, never fetched at run time; when absent the option is off and
`MISSING` says how to get it.

Loading goes through diffusers' own `load_ip_adapter`, but into a second UNet that shares every weight
tensor with the model's UNet (no copy): the adapter replaces that UNet's cross-attention processors and
adds an image projection, and the other tabs keep running on the untouched original. Requests with Keep
identity at 0 never reach the adapter, so their output is exactly what it was without one.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

ADAPTER_REPO = "h94/IP-Adapter"
ADAPTER_SUBFOLDER = "models"
ADAPTER_FILE = "ip-adapter-full-face_sd15.safetensors"
ENCODER_FOLDER = "image_encoder"
DEFAULT_SCALE = 0.6  # the Keep identity slider's starting value
LOCAL_FOLDERS = (".", "IP-Adapter/models")  # under weights/: flat, or the hub repo's layout
MISSING = (
    "Keep identity needs the IP-Adapter full-face weights, which are not installed; download them with "
    f"`hf download {ADAPTER_REPO} {ADAPTER_SUBFOLDER}/{ADAPTER_FILE} {ADAPTER_SUBFOLDER}/{ENCODER_FOLDER}/config.json "
    f"{ADAPTER_SUBFOLDER}/{ENCODER_FOLDER}/model.safetensors --local-dir weights/IP-Adapter`, "
    "or set Keep identity to 0."
)


@dataclass(frozen=True)
class AdapterSource:
    """Where the adapter file and its image encoder are, in `load_ip_adapter`'s terms."""

    location: str  # a local folder, or the hub id when it is in the Hugging Face cache
    subfolder: str  # folder of the adapter file inside `location`
    weight_name: str  # the adapter file
    image_encoder_folder: str = ENCODER_FOLDER  # inside `subfolder`

    @property
    def label(self) -> str:
        return str(Path(self.location) / self.subfolder / self.weight_name)


@dataclass
class IdentityAdapter:
    """The loaded adapter: a UNet over the shared weights with the adapter in, and its image encoder."""

    unet: torch.nn.Module
    image_encoder: torch.nn.Module
    feature_extractor: object
    source: AdapterSource
    lock: threading.Lock  # the adapter's scale lives on the UNet's processors: one scale at a time


def find_adapter(weights_dir: Path) -> AdapterSource | None:
    """The adapter in `weights_dir` (flat, or `IP-Adapter/models/` as `hf download` writes it), else in the
    Hugging Face cache; None when neither has both the adapter file and the image encoder."""
    weights_dir = Path(weights_dir)
    for name in LOCAL_FOLDERS:
        folder = (weights_dir / name).resolve()
        if (folder / ADAPTER_FILE).is_file() and (folder / ENCODER_FOLDER / "config.json").is_file():
            return AdapterSource(str(folder), "", ADAPTER_FILE)
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    files = (f"{ADAPTER_SUBFOLDER}/{ADAPTER_FILE}", f"{ADAPTER_SUBFOLDER}/{ENCODER_FOLDER}/config.json")
    if all(isinstance(try_to_load_from_cache(ADAPTER_REPO, f), str) for f in files):
        return AdapterSource(ADAPTER_REPO, ADAPTER_SUBFOLDER, ADAPTER_FILE)
    return None


def share_unet(unet):
    """A second UNet whose parameters are the same tensors as `unet`'s: no copy, its own processors and config."""
    cls = type(unet)
    with torch.device("meta"):
        twin = cls.from_config(unet.config)
    twin.load_state_dict(unet.state_dict(), assign=True)
    left = [name for name, t in [*twin.named_parameters(), *twin.named_buffers()] if t.is_meta]
    if left:
        raise ValueError(f"The model's UNet could not be shared with the identity adapter ({left[0]} is missing).")
    twin.set_attn_processor(dict(unet.attn_processors))
    return twin.eval().requires_grad_(False)


def load_adapter(base, source: AdapterSource) -> IdentityAdapter:
    """Load the adapter and its image encoder with diffusers' `load_ip_adapter`, into a UNet sharing `base`'s weights."""
    import diffusers

    # 1. a pipeline around the twin UNet, with no image encoder yet, so load_ip_adapter registers one
    unet = share_unet(base.unet)
    parts = {**base.components, "unet": unet, "image_encoder": None, "feature_extractor": None}
    holder = diffusers.StableDiffusionPipeline(**parts, requires_safety_checker=False)

    # 2. diffusers' loader, local files only: the hub is never reached at run time
    try:
        holder.load_ip_adapter(source.location, subfolder=source.subfolder, weight_name=source.weight_name,
                               image_encoder_folder=source.image_encoder_folder, local_files_only=True)
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        raise ValueError(f"The identity adapter in {source.label} could not be loaded ({exc}); "
                         "download it again or set Keep identity to 0.") from exc
    holder.image_encoder.eval().requires_grad_(False)
    return IdentityAdapter(unet, holder.image_encoder, holder.feature_extractor, source, threading.Lock())


@contextmanager
def scaled(adapter: IdentityAdapter, pipe, scale: float):
    """Hold the adapter at `scale` for one pipeline call; other requests with the adapter wait their turn."""
    with adapter.lock:
        pipe.set_ip_adapter_scale(float(scale))
        yield pipe
