"""Load face restorers offline through spandrel, so GFPGAN, RestoreFormer and CodeFormer share one path."""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from engine.extras.folders import model_files

FOLDERS = ("GFPGAN", "Codeformer")
"""Folders under the weights directory searched for restorers (A1111's names)."""

SUFFIXES = (".pth", ".safetensors")
KNOWN = ("GFPGAN", "CodeFormer", "RestoreFormer")

_INSTALL_LOCK = threading.Lock()
_installed = False


def restorer_files(weights_dir: Path) -> dict[str, Path]:
    """Map each restorer name to its file: a known family name when the file stem names one, else the stem."""
    def name_of(path: Path) -> str:
        return next((k for k in KNOWN if k.lower() in path.stem.lower()), path.stem)

    return model_files(weights_dir, FOLDERS, SUFFIXES, name_of)


def _install_extra_arches() -> None:
    """Add CodeFormer (spandrel_extra_arches) to spandrel's registry once per process."""
    global _installed
    with _INSTALL_LOCK:
        if _installed:
            return
        import spandrel_extra_arches

        spandrel_extra_arches.install(ignore_duplicates=True)
        _installed = True


@lru_cache(maxsize=1)
def load_restorer(path: Path):
    """Load and check one restorer file, keeping only the last one so two never sit in memory."""
    import spandrel

    _install_extra_arches()
    try:
        model = spandrel.ModelLoader().load_from_file(str(path))
    except Exception as error:  # spandrel raises many kinds for unknown or damaged files
        raise ValueError(
            f"{path.name} is not a face restorer spandrel can read ({type(error).__name__}); "
            "put a GFPGAN, RestoreFormer or CodeFormer .pth or .safetensors file there instead."
        ) from None
    if getattr(model, "purpose", None) != "FaceSR":
        raise ValueError(
            f"{path.name} is a {model.architecture.name} model, not a face restorer; "
            "choose a GFPGAN, RestoreFormer or CodeFormer file instead."
        )
    return model.eval()
