"""The training inputs, prepared once: photo latents, caption tokens, and which examples each step uses."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def caption_prompt(name: str, class_word: str, caption: str = "") -> str:
    """DreamBooth's instance prompt, "photo of NAME CLASS", with the photo's own caption after it when given."""
    instance = f"photo of {name} {class_word}"
    caption = caption.strip()
    if not caption:
        return instance
    return caption if name.lower() in caption.lower().split() else f"{instance}, {caption}"


def pixels(images: list[Image.Image]) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1], as the VAE expects."""
    array = np.stack([np.asarray(image.convert("RGB"), dtype=np.float32) for image in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 127.5 - 1


@torch.no_grad()
def encode_latents(vae, images: list[Image.Image]) -> torch.Tensor:
    """Each photo's latent (the posterior's mean, scaled), encoded once: fp32, on the VAE's device."""
    out = []
    for image in images:
        x = pixels([image]).to(vae.device, vae.dtype)
        out.append(vae.encode(x).latent_dist.mean.float() * vae.config.scaling_factor)
    return torch.cat(out)


def tokens(tokenizer, prompts: list[str]) -> torch.Tensor:
    """CLIP token ids, padded to its 77-token window."""
    return tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


def batch_indices(step: int, batch_size: int, count: int, seed: int) -> list[int]:
    """The examples of a step: a fresh shuffle each epoch, derived from the seed alone so a resume repeats it."""
    out = []
    for position in range(step * batch_size, (step + 1) * batch_size):
        epoch, place = divmod(position, count)
        order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
        out.append(int(order[place]))
    return out
