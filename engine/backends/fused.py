"""A LoRA fused into a copy of the UNet, so OpenVINO can convert a few-step model of its own."""
from __future__ import annotations

import torch


def fuse_active(unet: torch.nn.Module) -> int:
    """Merge the active LoRA adapters into the weights of `unet` (a private copy); returns the layers merged."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    merged = 0
    for module in unet.modules():
        if isinstance(module, BaseTunerLayer) and not module.merged:
            module.merge(safe_merge=True)
            merged += 1
    return merged


def variant_name(file_hash: str) -> str:
    """The cache folder suffix of a model with the LoRA of this file hash fused in."""
    return f"lora-{file_hash}"
