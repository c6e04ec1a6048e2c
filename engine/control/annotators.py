"""ControlNet annotator weights: found in weights/Annotators or the Hugging Face cache, never downloaded at run time.

The files are those of the hub repository `lllyasviel/Annotators`, under their own names, in A1111's folder
`weights/Annotators` (or already in the Hugging Face cache from an earlier download). Each detector is built
from `controlnet_aux`'s network class and its state dict loaded from the local file (on the CPU, tensors only),
once per file; `controlnet_aux` itself is imported only here, and only when a detector is first needed.
"""
from __future__ import annotations

import importlib.util
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

from engine.pipeline.models import WEIGHTS_DIR

ANNOTATORS_FOLDER = "Annotators"
HUB_REPO = "lllyasviel/Annotators"
README_SECTION = 'the README section "ControlNet preprocessors"'


@dataclass(frozen=True)
class AnnotatorFile:
    """One weights file of `lllyasviel/Annotators` and its download size, for the sentence that asks for it."""

    name: str
    size: str


ANNOTATOR_FILES: dict[str, tuple[AnnotatorFile, ...]] = {
    "softedge_pidinet": (AnnotatorFile("table5_pidinet.pth", "2.9 MB"),),
    "softedge_hed": (AnnotatorFile("ControlNetHED.pth", "29 MB"),),
    "lineart_realistic": (AnnotatorFile("sk_model.pth", "17 MB"),),
    "openpose": (AnnotatorFile("body_pose_model.pth", "209 MB"),),
    "mlsd": (AnnotatorFile("mlsd_large_512_fp32.pth", "6 MB"),),
}
"""Preprocessor name (A1111's) -> the annotator files it needs."""

_LOADED: dict[tuple[str, tuple[str, ...]], object] = {}
_LOCK = threading.Lock()


def annotators_dir(weights_dir: str | Path | None = None) -> Path:
    """The folder annotator files are looked for in first: `<weights>/Annotators`."""
    return Path(weights_dir if weights_dir is not None else WEIGHTS_DIR) / ANNOTATORS_FOLDER


def controlnet_aux_installed() -> bool:
    """Whether `controlnet_aux` can be imported, found without importing it (the import is slow and noisy)."""
    return importlib.util.find_spec("controlnet_aux") is not None


def find_file(filename: str, weights_dir: str | Path | None = None) -> Path | None:
    """The local path of one annotator file: weights/Annotators first, then the HF cache; None when neither has it."""
    local = annotators_dir(weights_dir) / filename
    if local.is_file():
        return local
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(HUB_REPO, filename)  # reads the cache folder only: never the network
    except Exception:
        return None
    return Path(cached) if isinstance(cached, str) and Path(cached).is_file() else None


def missing_files(name: str, weights_dir: str | Path | None = None) -> list[AnnotatorFile]:
    """The files a preprocessor needs that are on disk nowhere (empty when it can run)."""
    return [f for f in ANNOTATOR_FILES[name] if find_file(f.name, weights_dir) is None]


def why_unavailable(name: str, weights_dir: str | Path | None = None) -> str:
    """One sentence on how to make a preprocessor runnable, or "" when it already is."""
    if not controlnet_aux_installed():
        return (f"The {name} preprocessor needs the controlnet_aux package: install it with "
                "`pip install controlnet_aux`.")
    missing = missing_files(name, weights_dir)
    if not missing:
        return ""
    files = " and ".join(f"{f.name} ({f.size})" for f in missing)
    return (f"The {name} preprocessor needs {files} from the Hugging Face repository {HUB_REPO} in "
            f"weights/{ANNOTATORS_FOLDER}; see {README_SECTION}.")


def load_detector(name: str, weights_dir: str | Path | None = None):
    """The `controlnet_aux` detector of a preprocessor, loaded once from its local files; ValueError when it can't be."""
    reason = why_unavailable(name, weights_dir)
    if reason:
        raise ValueError(reason)
    paths = tuple(str(find_file(f.name, weights_dir)) for f in ANNOTATOR_FILES[name])
    key = (name, paths)
    with _LOCK:
        if key not in _LOADED:
            try:
                _LOADED[key] = _BUILDERS[name](*[Path(p) for p in paths])
            except Exception as exc:
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200].rstrip(".")
                names = " and ".join(f.name for f in ANNOTATOR_FILES[name])
                raise ValueError(f"{names} could not be loaded as the {name} annotator ({reason}); replace it with "
                                 f"the file from {HUB_REPO} (see {README_SECTION}).") from exc
        return _LOADED[key]


def _quiet_import(module: str):
    """Import a `controlnet_aux` module with its import-time warnings (timm registry, mediapipe) silenced."""
    import importlib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return importlib.import_module(module)


def _state_dict(path: Path) -> dict:
    """A checkpoint's tensors, on the CPU, without running any pickled code."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def _ready(network):
    network.float().eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network


def _pidinet(path: Path):
    pidi = _quiet_import("controlnet_aux.pidi")
    network = _quiet_import("controlnet_aux.pidi.model").pidinet()
    checkpoint = _state_dict(path)
    weights = checkpoint.get("state_dict", checkpoint)
    network.load_state_dict({k.replace("module.", "", 1): v for k, v in weights.items()})
    return pidi.PidiNetDetector(_ready(network))


def _hed(path: Path):
    hed = _quiet_import("controlnet_aux.hed")
    network = hed.ControlNetHED_Apache2()
    network.load_state_dict(_state_dict(path))
    return hed.HEDdetector(_ready(network))


def _lineart(path: Path):
    lineart = _quiet_import("controlnet_aux.lineart")
    network = lineart.Generator(3, 1, 3)
    network.load_state_dict(_state_dict(path))
    network = _ready(network)
    return lineart.LineartDetector(network, network)  # A1111's lineart_realistic: the fine model only


def _openpose(path: Path):
    open_pose = _quiet_import("controlnet_aux.open_pose")
    body_module = _quiet_import("controlnet_aux.open_pose.body")
    util = _quiet_import("controlnet_aux.open_pose.util")
    body = body_module.Body.__new__(body_module.Body)  # Body(path) would torch.load without map_location
    body.model = body_module.bodypose_model()
    body.model.load_state_dict(util.transfer(body.model, _state_dict(path)))
    _ready(body.model)
    return open_pose.OpenposeDetector(body)  # A1111's openpose: the body only, no hands or face


def _mlsd(path: Path):
    large = _quiet_import("controlnet_aux.mlsd.models.mbv2_mlsd_large")
    network = large.MobileV2_MLSD_Large()
    network.load_state_dict(_state_dict(path), strict=True)
    return _ready(network)  # run through controlnet_aux.mlsd.utils.pred_lines (its detector hides errors)


_BUILDERS = {"softedge_pidinet": _pidinet, "softedge_hed": _hed, "lineart_realistic": _lineart,
             "openpose": _openpose, "mlsd": _mlsd}
