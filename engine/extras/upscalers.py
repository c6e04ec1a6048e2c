"""Upscaler models (ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT) found in A1111's folders and loaded through spandrel."""
from __future__ import annotations

import threading
from pathlib import Path

from engine.extras.folders import model_files
from engine.text.limits import excerpt

FOLDERS = ("ESRGAN", "RealESRGAN", "SwinIR", "HAT", "DAT")
SUFFIXES = (".pth", ".safetensors", ".pt", ".ckpt")
LANCZOS = "Lanczos"
NONE = "None"

A1111_NAMES = {
    "RealESRGAN_x4plus": "R-ESRGAN 4x+",
    "RealESRGAN_x4plus_anime_6B": "R-ESRGAN 4x+ Anime6B",
    "RealESRGAN_x2plus": "R-ESRGAN 2x+",
    "realesr-general-x4v3": "R-ESRGAN General 4xV3",
    "realesr-general-wdn-x4v3": "R-ESRGAN General WDN 4xV3",
    "realesr-animevideov3": "R-ESRGAN AnimeVideo",
    "ESRGAN_4x": "ESRGAN_4x",
    "SwinIR_4x": "SwinIR 4x",
    "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M_x4_GAN": "SwinIR 4x",
}
"""Names A1111 shows for the well-known files, so its PNG info and habits carry over; other files show their stem."""

_lock = threading.Lock()
_cache: dict[tuple, object] = {}


def find_upscalers(weights_dir: Path) -> dict[str, Path]:
    """Every upscaler file under the weights folder, by the name the lists show."""
    return model_files(weights_dir, FOLDERS, SUFFIXES, lambda path: A1111_NAMES.get(path.stem, path.stem))


def upscaler_names(weights_dir: Path) -> list[str]:
    """Lanczos first, then the models found: what the Extras and Hires. fix menus offer."""
    return [LANCZOS, *find_upscalers(weights_dir)]


def resolve(name: str, weights_dir: Path, allow_path: bool = False) -> Path | None:
    """The model file for a menu name or file stem (None for Lanczos); an unknown name is refused.

    `allow_path` (the CLI's, never the server's) also takes a model file's own path.
    """
    if not isinstance(name, str) or name.strip().lower() in ("", LANCZOS.lower(), NONE.lower()):
        return None
    if allow_path and Path(name).suffix.lower() in SUFFIXES and Path(name).is_file():
        return Path(name)
    found = find_upscalers(weights_dir)
    by_stem = {path.stem: path for path in found.values()}
    path = found.get(name) or by_stem.get(name)
    if path is None:
        known = ", ".join([LANCZOS, *found]) if found else f"{LANCZOS} (no models in weights/ESRGAN or weights/RealESRGAN)"
        raise ValueError(f"Unknown upscaler {excerpt(name)}; choose one of {known}.")
    return path


def load_upscaler(path: Path):
    """A spandrel model for an upscaler file, kept once loaded; a restorer, LoRA or damaged file is refused."""
    path = Path(path)
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    with _lock:
        if key in _cache:
            return _cache[key]
        descriptor = _read(path)
        _cache.clear()  # one upscaler resident at a time: they can be hundreds of MB
        _cache[key] = descriptor
        return descriptor


def _read(path: Path):
    from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError

    try:
        descriptor = ModelLoader(device="cpu").load_from_file(str(path))
    except UnsupportedModelError:
        raise ValueError(f"{path.name} is not an upscaler model spandrel knows (ESRGAN, Real-ESRGAN, SwinIR, HAT, "
                         "DAT); a LoRA or checkpoint belongs in another folder.") from None
    except Exception:
        raise ValueError(f"{path.name} could not be read; the file may be damaged or incomplete, so download it "
                         "again.") from None
    if not isinstance(descriptor, ImageModelDescriptor) or descriptor.purpose != "SR" or descriptor.scale < 2:
        kind = "a face restorer" if getattr(descriptor, "purpose", "") == "FaceSR" else "not an upscaler"
        raise ValueError(f"{path.name} is {kind}; put upscalers in weights/ESRGAN and face restorers in "
                         "weights/GFPGAN or weights/Codeformer.")
    return descriptor.eval()
