"""The LoRA file in kohya/A1111 format: `lora_unet_…`/`lora_te_…` keys with `.alpha`, and kohya's `ss_*` metadata.

A1111, ComfyUI, kohya's tools and diffusers' `load_lora_weights` all read this layout; the `ss_*` fields are what
their LoRA browsers show (base model, steps, rank, alpha, resolution, tags, image count).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from engine.train.network import module_pairs

SAVE_DTYPE = torch.float16  # kohya's usual save precision; half the size, A1111 and diffusers read it


def kohya_tensors(unet_state: dict, text_state: dict, alpha: float) -> dict[str, torch.Tensor]:
    """kohya keys from the twin modules' LoRA tensors (peft's A is kohya's down, B its up)."""
    tensors = {}
    for prefix, state in (("lora_unet_", unet_state), ("lora_te_text_model_", text_state)):
        for module, (down, up) in module_pairs(state).items():
            key = prefix + module.removeprefix("text_model.").replace(".", "_")  # transformers 5 drops text_model
            tensors[f"{key}.lora_down.weight"] = down.to(SAVE_DTYPE).contiguous()
            tensors[f"{key}.lora_up.weight"] = up.to(SAVE_DTYPE).contiguous()
            tensors[f"{key}.alpha"] = torch.tensor(float(alpha), dtype=SAVE_DTYPE)
    return tensors


def kohya_metadata(*, name: str, class_word: str, model: str, rank: int, alpha: float, resolution: int,
                   steps_done: int, max_steps: int, images: int, captions: list[str], text_encoder: bool,
                   unet_lr: float, text_encoder_lr: float, warmup_steps: int, seed: int, min_snr_gamma: float,
                   batch_size: int, prior_images: int, prior_loss_weight: float, flip: bool, precision: str,
                   started: float, optimizer: str = "torch.optim.AdamW") -> dict[str, str]:
    """kohya's ss_* fields (all strings, as safetensors metadata must be) plus the modelspec trigger phrase."""
    words: dict[str, int] = {}
    for caption in captions:
        for tag in (t.strip() for t in caption.split(",")):
            if tag:
                words[tag] = words.get(tag, 0) + 1
    fields = {
        "ss_network_module": "networks.lora", "ss_base_model_version": "sd_v1", "ss_v2": "False",
        "ss_sd_model_name": model, "ss_output_name": name, "ss_network_dim": rank, "ss_network_alpha": alpha,
        "ss_resolution": f"({resolution}, {resolution})", "ss_steps": steps_done, "ss_max_train_steps": max_steps,
        "ss_num_train_images": images, "ss_num_reg_images": prior_images, "ss_batch_size_per_device": batch_size,
        "ss_epoch": -(-steps_done * batch_size // max(1, images)), "ss_learning_rate": unet_lr,
        "ss_unet_lr": unet_lr, "ss_text_encoder_lr": text_encoder_lr if text_encoder else 0,
        "ss_network_train_unet_only": not text_encoder, "ss_lr_scheduler": "constant_with_warmup",
        "ss_lr_warmup_steps": warmup_steps, "ss_seed": seed, "ss_min_snr_gamma": min_snr_gamma,
        "ss_prior_loss_weight": prior_loss_weight, "ss_flip_aug": flip, "ss_mixed_precision": precision,
        "ss_optimizer": optimizer, "ss_training_started_at": started,
        "ss_training_finished_at": time.time(), "ss_tag_frequency": json.dumps({f"1_{name} {class_word}": words}),
        "ss_training_comment": f"trigger word: {name}; class: {class_word}",
        "modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": "stable-diffusion-v1/lora",
        "modelspec.implementation": "diffusers", "modelspec.title": name,
        "modelspec.trigger_phrase": f"{name} {class_word}", "modelspec.resolution": f"{resolution}x{resolution}",
    }
    return {key: str(value) for key, value in fields.items()}


def write_file(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write the .safetensors atomically: a temporary file beside it, then one rename."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(temporary), metadata=metadata)
    os.replace(temporary, path)
    return path
