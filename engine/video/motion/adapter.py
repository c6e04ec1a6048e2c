"""The AnimateDiff motion adapter: where it comes from (weights/, the hub, or tiny) and loading it once per model.

Sources, in the order they are looked for when none is named:
1. a diffusers folder (`config.json` naming `MotionAdapter`) under `weights/motion/` or directly under `weights/`;
2. a single original file (`.safetensors` or `.ckpt`, e.g. `mm_sd_v15_v2.ckpt`) under `weights/motion/`;
3. `guoyww/animatediff-motion-adapter-v1-5-2` from the Hugging Face hub (1.82 GB, fetched on first use).
With the tiny model a tiny random adapter is built offline from `presets/motion/tiny`.

Single files sit in `weights/motion/`, not `weights/`, so the model menu never lists them as checkpoints.
"""
from __future__ import annotations

import json
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.pipeline.components import PRESETS_DIR
from engine.pipeline.models import CHECKPOINT_SUFFIXES, HUB_ID, TINY, hub_offline, hub_reachable
from engine.text.limits import excerpt

DEFAULT_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-2"
MOTION_PRESETS: Path = PRESETS_DIR / "motion"
LOCAL_FOLDER = "motion"  # weights/motion/: single files and diffusers folders
HOW_TO_GET = (f"download it with `hf download {DEFAULT_ADAPTER} --local-dir weights/motion/animatediff-motion-adapter-v1-5-2`"
              ", or put an AnimateDiff motion module (e.g. mm_sd_v15_v2.safetensors) in weights/motion/")
# checkpoint keys that tell the original AnimateDiff releases apart (as diffusers' single-file loader does)
V2_KEY = "mid_block.motion_modules.0.temporal_transformer.norm.bias"
PE_KEY = "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.pos_encoder.pe"
# a MotionAdapter's own state dict saved as one file (AnimateDiff-Lightning's *_diffusers.safetensors)
DIFFUSERS_PE_KEY = "down_blocks.0.motion_modules.0.transformer_blocks.0.pos_embed.pe"


@dataclass(frozen=True)
class AdapterSource:
    """A resolved motion adapter: what it is and where its files are."""

    name: str  # as shown in the menu and saved in the video's settings
    kind: str  # "tiny", "hub", "folder" or "file"
    location: str

    @property
    def label(self) -> str:
        return Path(self.location).stem if self.kind == "file" else self.name.rsplit("/", 1)[-1]


def _is_adapter_folder(folder: Path) -> bool:
    try:
        return json.loads((folder / "config.json").read_text()).get("_class_name") == "MotionAdapter"
    except (OSError, ValueError, AttributeError):
        return False


def local_adapters(weights_dir: Path) -> list[str]:
    """Motion adapters found under `weights_dir`, as paths relative to it, for the menu."""
    weights_dir = Path(weights_dir)
    found: list[str] = []
    for folder in (weights_dir, weights_dir / LOCAL_FOLDER):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_dir() and _is_adapter_folder(path):
                found.append(str(path.relative_to(weights_dir)))
            elif folder != weights_dir and path.is_file() and path.suffix.lower() in CHECKPOINT_SUFFIXES:
                found.append(str(path.relative_to(weights_dir)))
    return found


def adapter_choices(weights_dir: Path) -> list[str]:
    """The menu: local adapters first, then the hub default."""
    return [*local_adapters(weights_dir), DEFAULT_ADAPTER]


def resolve_adapter(name: str | None, model_name: str, weights_dir: Path) -> AdapterSource:
    """The adapter to use: the tiny one for the tiny model, else `name`, else the first local one, else the hub's.

    Raises ValueError with how to get an adapter when the named one does not exist.
    """
    if (model_name or "").strip() == TINY:
        named = (name or "").strip()
        if not named or not any(p.exists() for p in (Path(weights_dir) / named, Path(named))):
            return AdapterSource(TINY, "tiny", str(MOTION_PRESETS / "tiny"))
    name = (name or "").strip() or (local_adapters(weights_dir) or [DEFAULT_ADAPTER])[0]
    for candidate in (Path(weights_dir) / name, Path(name)):
        if candidate.is_dir():
            if not _is_adapter_folder(candidate):
                raise ValueError(f"{name} is not a motion adapter folder (its config.json does not name "
                                 f"MotionAdapter); {HOW_TO_GET}.")
            return AdapterSource(name, "folder", str(candidate.resolve()))
        if candidate.is_file():
            if candidate.suffix.lower() not in CHECKPOINT_SUFFIXES:
                raise ValueError(f"{name} is not a .safetensors or .ckpt motion module; {HOW_TO_GET}.")
            return AdapterSource(name, "file", str(candidate.resolve()))
    if HUB_ID.match(name) and not name.startswith(("weights/", "./", "../")):
        return AdapterSource(name, "hub", name)
    raise ValueError(f"The motion adapter {excerpt(name)} was not found; {HOW_TO_GET}.")


def hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:
        return False


def availability(source: AdapterSource) -> str | None:
    """None when the adapter can be had now; else a sentence saying why not and how to fix it. Loads nothing."""
    if source.kind == "hub" and not hub_cached(source.location) and (hub_offline() or not hub_reachable()):
        return (f"Text to video needs the motion adapter {source.name}, which is not downloaded and the Hugging "
                f"Face hub can't be reached; {HOW_TO_GET}.")
    return None


def build_tiny_adapter(dtype: torch.dtype = torch.float32):
    """The tiny random adapter for the tiny model, from `presets/motion/tiny`; the same weights every time."""
    from diffusers import MotionAdapter

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)  # the tiny pipeline seeds its models with 0, 1 and 2
        adapter = MotionAdapter.from_config(MotionAdapter.load_config(MOTION_PRESETS / "tiny"))
    return (adapter if adapter.dtype == dtype else adapter.to(dtype)).eval()  # .to() warns even as a no-op


def single_file_config(path: Path) -> Path:
    """Which release an original motion module file is (v1, v2 or v3), read from its keys, as a preset folder."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                keys = set(handle.keys())
                positions = handle.get_slice(PE_KEY).get_shape()[1] if PE_KEY in keys else None
        else:
            state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
            state = state.get("state_dict", state)
            keys = set(state)
            positions = state[PE_KEY].shape[1] if PE_KEY in keys else None
    except Exception as exc:
        raise ValueError(f"{path.name} is not a readable motion module (it is corrupt or not a checkpoint); "
                         f"download it again. ({type(exc).__name__})") from exc
    if positions is None:
        raise ValueError(f"{path.name} is not an AnimateDiff SD 1.5 motion module; {HOW_TO_GET}.")
    return MOTION_PRESETS / ("v1-5-2" if V2_KEY in keys else "v1-5" if positions == 24 else "v1-5-3")


def diffusers_layout(path: Path) -> bool:
    """True for a MotionAdapter state dict saved as one .safetensors file (AnimateDiff-Lightning's files)."""
    if path.suffix.lower() != ".safetensors":
        return False
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            return DIFFUSERS_PE_KEY in handle.keys()
    except Exception:
        return False


def load_diffusers_file(path: Path, dtype: torch.dtype):
    """A diffusers-layout adapter file, with the preset (v1-5-2, tiny...) whose tensor shapes its own match."""
    from diffusers import MotionAdapter
    from safetensors.torch import load_file

    state = load_file(str(path))
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    for preset in sorted(p for p in MOTION_PRESETS.iterdir() if (p / "config.json").is_file()):
        with torch.device("meta"):
            adapter = MotionAdapter.from_config(MotionAdapter.load_config(preset))
        if {k: tuple(v.shape) for k, v in adapter.state_dict().items()} == shapes:
            adapter.load_state_dict(state, assign=True)
            return adapter.to(dtype)
    raise ValueError(f"{path.name} holds a motion adapter of a shape this app doesn't know; use an SD 1.5 "
                     "AnimateDiff adapter (v1-5-2 or AnimateDiff-Lightning).")


def load_adapter(source: AdapterSource, dtype: torch.dtype):
    """Load a motion adapter in `dtype`; every failure becomes one sentence with the fix."""
    from diffusers import MotionAdapter

    if source.kind == "tiny":
        return build_tiny_adapter(dtype)
    problem = availability(source)
    if problem:
        raise ValueError(problem)
    try:
        if source.kind == "file" and diffusers_layout(Path(source.location)):
            adapter = load_diffusers_file(Path(source.location), dtype)
        elif source.kind == "file":
            path = Path(source.location)
            adapter = MotionAdapter.from_single_file(str(path), config=str(single_file_config(path)),
                                                     local_files_only=True, dtype=dtype)
        else:
            offline = source.kind == "hub" and (hub_offline() or hub_cached(source.location))
            adapter = MotionAdapter.from_pretrained(source.location, dtype=dtype, local_files_only=offline)
    except ValueError:
        raise
    except Exception as exc:  # network, missing files and bad configs all surface differently
        reason = str(exc).strip().splitlines()[0][:200].rstrip(".") if str(exc).strip() else type(exc).__name__
        raise ValueError(f"The motion adapter {source.name} could not be loaded ({reason}); {HOW_TO_GET}.") from exc
    if adapter.config.get("conv_in_channels"):
        raise ValueError(f"{source.name} is a PIA adapter (image-to-video); choose a text-to-video motion adapter.")
    return adapter.eval().requires_grad_(False)


def check_fits(adapter, unet) -> None:
    """The adapter must have the UNet's levels and layers (SD 1.5 adapters for SD 1.5 models)."""
    levels = list(unet.config.block_out_channels)
    if list(adapter.config.block_out_channels) != levels:
        raise ValueError(f"The motion adapter's levels {list(adapter.config.block_out_channels)} don't match the "
                         f"model's {levels}; use an SD 1.5 motion adapter with an SD 1.5 model.")
    layers = adapter.config.motion_layers_per_block
    if layers != unet.config.layers_per_block:
        raise ValueError(f"The motion adapter has {layers} layers a block and the model {unet.config.layers_per_block}; "
                         "use a motion adapter made for this kind of model.")


# One adapter per loaded model, kept only while that model's UNet lives: switching models frees it too.
_loaded: "weakref.WeakKeyDictionary[torch.nn.Module, tuple[AdapterSource, torch.nn.Module]]" = \
    weakref.WeakKeyDictionary()
_lock = threading.Lock()


def hold_adapter(unet, source: AdapterSource, adapter) -> None:
    """Use an adapter built elsewhere (e.g. random weights in a benchmark) as `source` for the model of `unet`."""
    check_fits(adapter, unet)
    with _lock:
        _loaded[unet] = (source, adapter)


def shared_adapter(unet, source: AdapterSource, dtype: torch.dtype):
    """The adapter for the model whose UNet is `unet`, loaded once; another source replaces it (one adapter held)."""
    with _lock:
        held = _loaded.get(unet)
        if held is not None and held[0] == source:
            return held[1]
        _loaded.pop(unet, None)  # free the old adapter before the new one loads
        adapter = load_adapter(source, dtype).to(unet.device)
        check_fits(adapter, unet)
        _loaded[unet] = (source, adapter)
        return adapter
