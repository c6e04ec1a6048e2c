"""The optimiser: 8-bit AdamW from bitsandbytes where CUDA and bitsandbytes are present (a quarter of Adam's state
memory), torch's AdamW everywhere else; a CUDA run without bitsandbytes gets a note saying how to add it."""
from __future__ import annotations

import importlib.util

import torch

WEIGHT_DECAY = 1e-2  # AdamW, as diffusers' train_dreambooth scripts
EIGHT_BIT = "bitsandbytes.optim.AdamW8bit"
TORCH_ADAMW = "torch.optim.AdamW"


def on_cuda(device) -> bool:
    return str(device).startswith("cuda") and torch.cuda.is_available()


def eight_bit_available(device) -> bool:
    """Whether `make_optimizer` would pick 8-bit Adam for `device`: CUDA and bitsandbytes installed."""
    return on_cuda(device) and importlib.util.find_spec("bitsandbytes") is not None


def make_optimizer(groups: list[dict], device) -> tuple[torch.optim.Optimizer, str, str | None]:
    """(optimiser, its name for the file's metadata, a note when a GPU run falls back to torch's AdamW)."""
    if not on_cuda(device):  # bitsandbytes' 8-bit optimisers are CUDA kernels
        return torch.optim.AdamW(groups, weight_decay=WEIGHT_DECAY), TORCH_ADAMW, None
    try:
        import bitsandbytes
    except ImportError:
        return (torch.optim.AdamW(groups, weight_decay=WEIGHT_DECAY), TORCH_ADAMW,
                "8-bit Adam needs bitsandbytes (pip install bitsandbytes); the training uses torch's AdamW, "
                "whose state takes four times the memory.")
    return bitsandbytes.optim.AdamW8bit(groups, weight_decay=WEIGHT_DECAY), EIGHT_BIT, None
