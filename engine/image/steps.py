"""diffusers' per-step hook shared by every image pass: progress, a cheap preview now and then, and Stop."""
from __future__ import annotations

from engine.image.preview import latents_to_preview
from engine.image.request import RunControl, StepCallback, StepUpdate

PREVIEW_EVERY = 4


def step_callback(index: int, batch_count: int, on_step: StepCallback | None, control: RunControl,
                  num_inference_steps: int | None = None, strength: float | None = None):
    """diffusers' step hook: report progress, send a cheap preview now and then, and honour Stop."""
    def callback(pipe, step: int, timestep, tensors: dict) -> dict:
        if control.stopped:
            pipe._interrupt = True
        if on_step is not None:
            total = pipe.num_timesteps
            preview = None
            if (step + 1) % PREVIEW_EVERY == 0 or step + 1 == total:
                latents = tensors["latents"][0].detach().float().cpu().numpy()
                preview = latents_to_preview(latents)
            on_step(StepUpdate(index, batch_count, step + 1, total, preview, num_inference_steps, strength))
        return tensors
    return callback
