"""Checkpoints: each written atomically (temporary file, then a rename), the last K kept, the newest found."""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch

PATTERN = re.compile(r"^step-(\d+)\.pt$")


def save_atomic(state: dict, path: Path) -> Path:
    """torch.save beside the target, then os.replace: a crash leaves the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)
    return path


def checkpoints(folder: Path) -> list[Path]:
    """The folder's checkpoints, oldest step first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(folder: Path, step: int, state: dict, keep: int) -> Path:
    """Write step-NNNNNN.pt and delete all but the newest `keep`."""
    path = save_atomic(state, folder / f"step-{step:06d}.pt")
    for old in checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def last_checkpoint(folder: Path) -> dict | None:
    """The newest checkpoint's state, or None when there is none."""
    found = checkpoints(folder)
    if not found:
        return None
    return torch.load(found[-1], map_location="cpu", weights_only=True)
