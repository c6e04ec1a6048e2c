"""diffusers' per-step hook shared by every image pass: progress, a cheap preview now and then, and Stop."""
from __future__ import annotations

from typing import Callable

import torch
from PIL import Image

from engine.image.preview import latents_to_preview
from engine.image.request import RunControl, StepCallback, StepUpdate

PREVIEW_EVERY = 4


def step_callback(index: int, batch_count: int, on_step: StepCallback | None, control: RunControl,
                  num_inference_steps: int | None = None, strength: float | None = None,
                  preview_maker: Callable[[torch.Tensor], Image.Image] | None = None):
    """diffusers' step hook: report progress, send a cheap preview now and then, and honour Stop.

    `preview_maker` turns the latents into the preview (TAESD's, from `manager.step_preview()`); None uses the
    latent-to-RGB approximation.
    """
    def callback(pipe, step: int, timestep, tensors: dict) -> dict:
        if control.stopped:
            pipe._interrupt = True
        if on_step is not None:
            total = pipe.num_timesteps
            preview = None
            if (step + 1) % PREVIEW_EVERY == 0 or step + 1 == total:
                if preview_maker is not None:
                    preview = preview_maker(tensors["latents"])
                else:
                    preview = latents_to_preview(tensors["latents"][0].detach().float().cpu().numpy())
            on_step(StepUpdate(index, batch_count, step + 1, total, preview, num_inference_steps, strength))
        return tensors
    return callback


def step_preview(manager) -> Callable[[torch.Tensor], Image.Image] | None:
    """The manager's TAESD previews when it offers them (a stand-in manager may not), else None."""
    maker = getattr(manager, "step_preview", None)
    return maker() if callable(maker) else None


def decode_choice(req) -> dict:
    """`manager.pipeline`'s keyword for Fast decode, given only when asked, so any manager serves the other runs."""
    return {"fast_decode": True} if getattr(req, "fast_decode", False) else {}
