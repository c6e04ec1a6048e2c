"""Samples while training: fixed prompts and a fixed seed, so the user watches the subject appear step by step."""
from __future__ import annotations

from pathlib import Path

import torch

SAMPLE_SEED = 1234
GUIDANCE = 7.0


def sample_prompts(name: str, class_word: str) -> list[str]:
    """The trigger word alone, and in a scene."""
    return [f"photo of {name} {class_word}", f"{name} {class_word} in a sunny park, detailed photo"]


@torch.no_grad()
def render(base, unet, text_encoder, prompts: list[str], size: int, steps: int, seed: int = SAMPLE_SEED) -> list:
    """One image per prompt from the twin UNet and text encoder, over the model's VAE and tokenizer."""
    from diffusers import StableDiffusionPipeline

    from engine.pipeline.schedulers import DEFAULT_SAMPLER, make_scheduler
    from engine.text.prompts import encode_prompt_pair

    parts = {**base.components, "unet": unet, "text_encoder": text_encoder,
             "scheduler": make_scheduler(DEFAULT_SAMPLER, base.scheduler.config)}
    pipe = StableDiffusionPipeline(**parts, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    images = []
    for prompt in prompts:
        embeds, negative = encode_prompt_pair(base.tokenizer, text_encoder, prompt, "", unet.dtype)
        generator = torch.Generator("cpu").manual_seed(seed)
        images.extend(pipe(prompt_embeds=embeds, negative_prompt_embeds=negative, width=size, height=size,
                           num_inference_steps=steps, guidance_scale=GUIDANCE, generator=generator).images)
    return images


def save(images: list, folder: Path, step: int) -> list[Path]:
    """The step's samples as folder/step-000100-1.png, …: the tab's gallery and the REST URLs list them by name."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, image in enumerate(images, start=1):
        paths.append(folder / f"step-{step:06d}-{k}.png")
        image.save(paths[-1])
    return paths
