"""Depth for 3D animation: a `transformers` depth-estimation model, from weights/, a folder, or the hub.

Where it comes from, first found wins:
1. the `depth_model` the request names (a folder or a hub id), else the STUDIO_DEPTH_MODEL environment variable;
2. a folder in weights/ whose config.json is a depth-estimation model (e.g. weights/Depth-Anything-V2-Small-hf/);
3. `DEFAULT_DEPTH_MODEL` from the Hugging Face hub: from its cache, or downloaded (about 100 MB) when online.

The model's relative inverse depth is normalised to 0..1 per frame and mapped to Deforum's depth range,
z = (50 - 30 d) / 19, about 1.05 (near) to 2.63 (far), so translation and rotation values mean what they mean
in Deforum.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.pipeline.models import HUB_ID, WEIGHTS_DIR, hub_offline, hub_reachable
from engine.text.limits import excerpt

DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
MISSING = (f"3D mode needs a depth model and none was found: put a depth-estimation model folder (such as "
           f"{DEFAULT_DEPTH_MODEL.split('/')[1]}) in weights/, or go online once so {DEFAULT_DEPTH_MODEL} can be "
           "downloaded; until then use 2D mode.")
_LOADED: dict[str, "DepthModel"] = {}
_LOCK = threading.Lock()


def _is_depth_folder(folder: Path) -> bool:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    names = [str(config.get("model_type", "")), *map(str, config.get("architectures") or [])]
    return any("depth" in n.lower() or n.lower() in ("dpt", "glpn", "zoedepth") for n in names)


def _hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:
        return False


def find_depth_model(requested: str | None = None, weights_dir: Path = WEIGHTS_DIR, online: bool = True) -> str | None:
    """The folder or hub id to load depth from, or None when there is none to be had (see the module docstring)."""
    requested = (requested or os.environ.get("STUDIO_DEPTH_MODEL") or "").strip()
    if requested:
        if Path(requested).is_dir():
            return str(Path(requested).resolve())
        if (Path(weights_dir) / requested).is_dir():
            return str((Path(weights_dir) / requested).resolve())
        if HUB_ID.match(requested) and (_hub_cached(requested) or (online and not hub_offline() and hub_reachable())):
            return requested
        raise ValueError(f"The depth model {excerpt(requested)} is neither a folder nor a hub model that can be reached; "
                         f"give a depth-estimation model folder (e.g. in weights/), or leave it empty for "
                         f"{DEFAULT_DEPTH_MODEL}.")
    if Path(weights_dir).is_dir():
        for folder in sorted(Path(weights_dir).iterdir()):
            if folder.is_dir() and _is_depth_folder(folder):
                return str(folder.resolve())
    if _hub_cached(DEFAULT_DEPTH_MODEL):
        return DEFAULT_DEPTH_MODEL
    if online and not hub_offline() and hub_reachable():
        return DEFAULT_DEPTH_MODEL
    return None


def depth_available(weights_dir: Path = WEIGHTS_DIR) -> bool:
    """Whether 3D can be offered without a download attempt failing (looks only at disk and the hub cache)."""
    try:
        return find_depth_model(None, weights_dir, online=False) is not None
    except ValueError:
        return False


@dataclass
class DepthModel:
    """A loaded depth-estimation model and its image processor."""

    location: str
    model: object
    processor: object

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Depth (HxW float32, Deforum's scale: larger is farther) for an HxWx3 uint8 frame."""
        return ((50.0 - 30.0 * self.nearness(image)) / 19.0).astype(np.float32)

    def nearness(self, image: np.ndarray) -> np.ndarray:
        """Relative nearness (HxW float32, 0 farthest to 1 nearest) for an HxWx3 uint8 frame: a depth map's shades."""
        import torch
        from PIL import Image

        inputs = self.processor(images=Image.fromarray(image), return_tensors="pt")
        with torch.inference_mode():
            predicted = self.model(pixel_values=inputs["pixel_values"].to(self.model.dtype)).predicted_depth
        resized = torch.nn.functional.interpolate(predicted[:, None].float(), size=image.shape[:2], mode="bicubic",
                                                  align_corners=False)[0, 0].numpy()
        low, high = float(resized.min()), float(resized.max())
        near = (resized - low) / (high - low) if high - low > 1e-8 else np.zeros_like(resized)
        return near.astype(np.float32)


def load_depth_model(location: str, offline: bool = False) -> DepthModel:
    """Load once per location (memory is the only global state); ValueError with the fix if it can't load.

    offline (`bool`, defaults to False): read a hub id from the HF cache only, as HF_HUB_OFFLINE=1 would.
    """
    with _LOCK:
        if location in _LOADED:
            return _LOADED[location]
        import torch
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            local = Path(location).is_dir()
            model = AutoModelForDepthEstimation.from_pretrained(location, dtype=torch.float32,
                                                                local_files_only=local or offline or hub_offline())
            processor = AutoImageProcessor.from_pretrained(location, local_files_only=local or offline or hub_offline())
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200].rstrip(".")
            raise ValueError(f"The depth model {location} could not be loaded ({reason}); {MISSING}") from exc
        finally:
            hf_logging.set_verbosity(verbosity)
        model.eval()
        _LOADED[location] = DepthModel(location, model, processor)
        return _LOADED[location]
