"""Where results are written, so every image and video lands in one folder the app may serve from."""
from __future__ import annotations

import itertools
import logging
import os
import time
from pathlib import Path

from engine.pipeline.models import REPO_ROOT

log = logging.getLogger("diffusion_studio")


def output_root() -> Path:
    """STUDIO_OUTPUT_DIR, or outputs/ beside the app."""
    return Path(os.environ.get("STUDIO_OUTPUT_DIR") or REPO_ROOT / "outputs").resolve()


def task_dir(task: str, root: Path | None = None) -> Path:
    """outputs/<task>/<date>/, created on demand; says plainly when it can't be written."""
    folder = (root or output_root()) / task / time.strftime("%Y-%m-%d")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("The output folder %s can't be written (%s).", folder, exc.strerror)  # the path goes to the log only
        raise ValueError(f"The output folder can't be written ({exc.strerror}); set STUDIO_OUTPUT_DIR to a writable "
                         "folder.") from exc
    if not os.access(folder, os.W_OK):
        log.warning("The output folder %s can't be written.", folder)
        raise ValueError("The output folder can't be written; set STUDIO_OUTPUT_DIR to a writable folder.")
    return folder


def next_path(folder: Path, stem: str, suffix: str) -> Path:
    """A fresh numbered name (00001-<stem>.png), never overwriting an earlier result."""
    taken = {p.name.split("-", 1)[0] for p in folder.iterdir()}
    for n in itertools.count(len(taken) + 1):
        if f"{n:05d}" not in taken:
            return folder / f"{n:05d}-{stem}{suffix}"
    raise AssertionError("unreachable")


def delete_older_than(seconds: float, root: Path | None = None) -> int:
    """Remove results older than `seconds` so a shared server's disk doesn't fill up; returns files removed."""
    root = root or output_root()
    if not root.is_dir():
        return 0
    cutoff = time.time() - seconds
    removed = 0
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        except OSError:
            continue
    return removed
