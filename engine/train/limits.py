"""What the loaded model and the machine allow: the model family, the disk for checkpoints, Full DreamBooth's memory."""
from __future__ import annotations

import shutil
from pathlib import Path

FULL_MIN_GB = 16  # Full DreamBooth with 8-bit Adam needs about 16 GB of GPU memory (HF's DreamBooth blog)
FULL_MIN_GB_ADAMW = 24  # with torch's AdamW: fp32 UNet, its gradients and two moments are 14 GB before activations
SAMPLE_ROOM = 20 * 2**20  # samples, photos and the loss CSV


def check_family(unet_config) -> None:
    """Training writes SD 1.5 LoRAs: SDXL and SD 2 models are refused with a sentence."""
    width = getattr(unet_config, "cross_attention_dim", None)
    if getattr(unet_config, "addition_embed_type", None) == "text_time" or width == 2048:
        raise ValueError("The loaded model is SDXL; Train makes SD 1.5 LoRAs: load an SD 1.5 model to train.")
    if width == 1024:
        raise ValueError("The loaded model is Stable Diffusion 2; Train makes SD 1.5 LoRAs: load an SD 1.5 model "
                         "to train.")


def checkpoint_bytes(lora_parameters: int) -> int:
    """One checkpoint: the LoRA in fp32 and Adam's two moments."""
    return lora_parameters * 4 * 3 + 2**16


def check_disk(folder: Path, lora_parameters: int, keep: int) -> None:
    """Refuse to start when the disk can't hold the kept checkpoints (plus one being written) and the LoRA."""
    folder.mkdir(parents=True, exist_ok=True)
    needed = checkpoint_bytes(lora_parameters) * (keep + 1) + lora_parameters * 2 + SAMPLE_ROOM
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise ValueError(f"Not enough disk for the checkpoints: they need about {needed / 2**20:.0f} MB and "
                         f"{folder} has {free / 2**20:.0f} MB free; free some space or keep fewer checkpoints.")


def model_kind(manager) -> str:
    """Where the manager's model comes from ("tiny", "hub", "folder" or "file"), loaded or not yet."""
    from engine.pipeline.models import resolve_model

    return (manager.source or resolve_model(manager.model_name, manager.weights_dir)).kind


def full_dreambooth_refusal(device: str, model_kind: str = "") -> str | None:
    """Why Full DreamBooth can't run here (None when it can): a CUDA GPU with 16 GB and 8-bit Adam, or 24 GB.

    The tiny test model (`model_kind` "tiny") trains fully anywhere, in seconds: that is how the tests run it.
    """
    import torch

    from engine.train.optim import eight_bit_available

    if model_kind == "tiny":
        return None
    if not str(device).startswith("cuda") or not torch.cuda.is_available():
        return (f"Full DreamBooth needs a CUDA GPU with at least {FULL_MIN_GB} GB of memory; this model runs on "
                f"{device}: train a LoRA instead (the default), or train on a GPU machine and bring the file back.")
    total = torch.cuda.get_device_properties(torch.device(device)).total_memory / 2**30
    needed = FULL_MIN_GB if eight_bit_available(device) else FULL_MIN_GB_ADAMW
    if total < needed:
        how = "" if needed == FULL_MIN_GB else f" without 8-bit Adam (pip install bitsandbytes: {FULL_MIN_GB} GB do)"
        return (f"Full DreamBooth needs a GPU with at least {needed} GB of memory{how}; this one has {total:.0f} GB: "
                "train a LoRA instead.")
    return None
