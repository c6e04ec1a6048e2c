"""Model files in A1111's weights folders, by the name each menu shows."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path


def model_files(weights_dir: Path, folders: Iterable[str], suffixes: tuple[str, ...],
                name_of: Callable[[Path], str]) -> dict[str, Path]:
    """Each model file in the folders under `weights_dir`, by `name_of(path)`; the first file wins a name."""
    found: dict[str, Path] = {}
    for folder in folders:
        root = Path(weights_dir) / folder
        if not root.is_dir():
            continue
        for path in sorted(root.iterdir()):
            if path.is_file() and path.suffix.lower() in suffixes:
                found.setdefault(name_of(path), path)
    return found
