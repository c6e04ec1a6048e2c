"""Weights that live in files instead of anonymous memory, so a model kept only for fallbacks costs no RAM.

With OpenVINO active the compiled UNet holds the weights it runs on, while PyTorch's UNet must stay usable for
what OpenVINO can't serve (LoRAs, the Fast toggle, sizes not compiled yet). Here PyTorch's weights move into a
memory-mapped file in the disk cache: they read like any tensor, the kernel pages them in when a fallback runs,
and `page_out` hands those pages back afterwards. The same call drops OpenVINO's mapped compile-cache blob,
whose pages the compiled model no longer reads once it is built.
"""
from __future__ import annotations

import ctypes
import logging
import mmap
import os
import sys
import threading
from pathlib import Path

import torch

MADV_PAGEOUT = 21  # Linux 5.4+: reclaim these pages now; file pages come back from the file when touched again

log = logging.getLogger("engine.backends.paging")


def save_state(module: torch.nn.Module, path: Path) -> None:
    """Write the module's tensors (strides kept, so channels_last survives) to `path`, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}-{threading.get_ident()}")
    torch.save(module.state_dict(), partial)
    partial.replace(path)


def _matches(mapped: dict, current: dict) -> bool:
    return mapped.keys() == current.keys() and all(
        mapped[key].shape == value.shape and mapped[key].dtype == value.dtype and mapped[key].stride() == value.stride()
        for key, value in current.items())


def file_back(module: torch.nn.Module, path: Path) -> bool:
    """Swap the module's weights for identical ones memory-mapped from `path` (written first if missing).

    A file whose tensors don't match the module's layout is written again; False, leaving the module as it was,
    if it still doesn't match. Copy-on-write mapping: a later in-place change (a fused LoRA) stays in memory and
    never reaches the file.
    """
    current = module.state_dict()
    if path.exists():
        mapped = torch.load(path, mmap=True, weights_only=True)
        if not _matches(mapped, current):
            del mapped
            save_state(module, path)
    else:
        save_state(module, path)
    mapped = torch.load(path, mmap=True, weights_only=True)
    if not _matches(mapped, current):
        return False
    module.load_state_dict(mapped, assign=True)
    return True


def is_file_backed(tensor: torch.Tensor, folder: Path) -> bool:
    """Whether the tensor's memory lies in a file under `folder` mapped in this process (Linux; tests, bench)."""
    try:
        ranges = mapped_ranges(folder, Path("/proc/self/maps").read_text())
    except OSError:
        return False
    address = tensor.untyped_storage().data_ptr()
    return any(start <= address < end for start, end in ranges)


def mapped_ranges(folder: Path, maps_text: str) -> list[tuple[int, int]]:
    """Address ranges of the files under `folder` in a /proc/<pid>/maps text."""
    prefix = str(folder).rstrip("/") + "/"
    ranges = []
    for line in maps_text.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith(prefix):
            start, end = (int(value, 16) for value in parts[0].split("-"))
            ranges.append((start, end))
    return ranges


def page_out(folder: Path) -> int:
    """Ask the kernel to reclaim the resident pages of every file under `folder` mapped in this process.

    Contents never change: clean file pages are read back when touched, and copy-on-write pages stay. Returns
    the number of mappings advised; 0 off Linux or where the kernel lacks MADV_PAGEOUT.
    """
    if not sys.platform.startswith("linux"):
        return 0
    try:
        ranges = mapped_ranges(folder, Path("/proc/self/maps").read_text())
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    except (OSError, AttributeError):
        return 0
    done = 0
    for start, end in ranges:
        start -= start % mmap.PAGESIZE
        if libc.madvise(start, end - start, MADV_PAGEOUT) == 0:
            done += 1
        else:
            log.debug("madvise(MADV_PAGEOUT) failed: errno %d", ctypes.get_errno())
    return done
