"""Hires. fix as A1111 does it: draw at the base size, upscale, then redraw at the large size with img2img.

At 512 px SD 1.5 composes well; asked for 1024 px at once it repeats heads and limbs. Drawing the layout small and
only refining it large avoids that.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image

from engine.extras import upscalers
from engine.extras.upscale import upscale
from engine.image.parameters import parameters_text
from engine.image.request import (
    MAX_SEED,
    MAX_SIDE,
    MAX_STEPS,
    GeneratedImage,
    ImageRequest,
    RunControl,
    RunResult,
    StepCallback,
    as_number,
    pick_seed,
)
from engine.image.steps import decode_choice, step_callback, step_preview
from engine.image.variation_noise import seeded_noise
from engine.image.variations import first_variation_seed
from engine.pipeline.models import WEIGHTS_DIR
from engine.text.limits import excerpt
from engine.video.denoise import decode_frames, record_predictions

# A1111's latent upscalers: torch interpolation mode and antialiasing, applied to the latents
LATENT_UPSCALERS = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
# image upscalers: the first pass is decoded, resized with PIL, and encoded again by the img2img pass
IMAGE_UPSCALERS = {"Lanczos": Image.LANCZOS, "Nearest": Image.NEAREST}
UPSCALERS = (*LATENT_UPSCALERS, *IMAGE_UPSCALERS)
DEFAULT_UPSCALER = "Latent"
DEFAULT_SCALE = 2.0
DEFAULT_STRENGTH = 0.5
MIN_SCALE, MAX_SCALE = 1.0, 4.0
READ_BACK = ("Hires upscale", "Hires resize", "Hires steps", "Hires upscaler")  # A1111's Hires fields used here
LATENT_SHARP_STRENGTH = 0.5  # below this a latent upscale stays visibly soft (A1111's advice)


# 1. checking inputs
def hires_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """The final size: the base size times `scale`, rounded down to a multiple of 8 as A1111's latents are."""
    return int(width * scale) // 8 * 8, int(height * scale) // 8 * 8


def upscaler_choices(weights_dir: Path = WEIGHTS_DIR) -> list[str]:
    """The latent and image upscalers, then the upscaler models in weights/ESRGAN and its siblings (A1111's list)."""
    return [*UPSCALERS, *upscalers.find_upscalers(weights_dir)]


def check_hires(req: ImageRequest, weights_dir: Path = WEIGHTS_DIR) -> tuple[ImageRequest, list[str]]:
    """Reject Hires. fix settings that can't run, with a sentence; `req` has already passed check_request."""
    scale = as_number(req.hires_scale, "Hires upscale")
    if not MIN_SCALE <= scale <= MAX_SCALE:
        raise ValueError(f"Hires upscale must be from {MIN_SCALE:g} to {MAX_SCALE:g}; got {req.hires_scale}.")
    choices = upscaler_choices(weights_dir)
    if req.hires_upscaler not in choices:
        raise ValueError(f"Unknown Hires upscaler {excerpt(req.hires_upscaler)}; choose one of {', '.join(choices)}.")
    steps = as_number(req.hires_steps, "Hires steps")
    if steps != int(steps) or not 0 <= steps <= MAX_STEPS:
        raise ValueError(f"Hires steps must be a whole number from 0 (same as Steps) to {MAX_STEPS}; "
                         f"got {req.hires_steps}.")
    strength = as_number(req.hires_strength, "Hires denoising strength")
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"Hires denoising strength must be from 0 to 1; got {req.hires_strength}.")
    width, height = hires_size(req.width, req.height, scale)
    if max(width, height) > MAX_SIDE:
        raise ValueError(f"Hires. fix would make {width}×{height} px, above the {MAX_SIDE} px limit; lower "
                         "Upscale by or the width and height.")
    notes = []
    if req.hires_upscaler in LATENT_UPSCALERS and 0 < strength < LATENT_SHARP_STRENGTH:
        notes.append(f"Latent upscaling looks soft below a denoising strength of about {LATENT_SHARP_STRENGTH}; "
                     "use Lanczos for a lower strength.")
    return replace(req, hires_scale=scale, hires_steps=int(steps), hires_strength=strength), notes


def schedule_length(steps: int, strength: float) -> int:
    """The img2img schedule that runs exactly `steps` steps at `strength`, as A1111's hires pass does.

    diffusers runs int(schedule * strength) of a schedule's steps; A1111 stretches the schedule instead, so
    "Hires steps: 10" means ten denoising steps whatever the strength.
    """
    length = math.ceil(steps / strength)
    while int(length * strength) > steps:  # guard against rounding in steps / strength
        length -= 1
    while int(length * strength) < steps:
        length += 1
    return length


def hires_from_fields(req: ImageRequest, fields: dict[str, str]) -> list[str]:
    """Put A1111's Hires. fix PNG-info fields into `req` (its "Denoising strength" is the hires pass's).

    Returns the fields that could not be used. A1111's "Hires resize: WxH" becomes a scale when it keeps the
    aspect ratio; an upscaler that is not here (an ESRGAN model, say) becomes Lanczos; A1111's other Hires fields
    (a second sampler, prompt or checkpoint) are named as not used.
    """
    skipped = []
    if "Hires upscale" in fields:
        req.hires_scale = _float(fields["Hires upscale"])
    else:
        req.hires_scale = _scale_from_resize(fields.get("Hires resize", ""), req.width, req.height)
    if req.hires_scale is None:
        skipped.append("Hires upscale" if "Hires upscale" in fields else "Hires resize")
    for key, attr, kind in (("Denoising strength", "hires_strength", float), ("Hires steps", "hires_steps", int)):
        if key in fields:
            value = _float(fields[key])
            if value is None:
                skipped.append(key)
            else:
                setattr(req, attr, kind(value))
    skipped += [key for key in fields if key.startswith("Hires ") and key not in READ_BACK]  # e.g. Hires sampler
    upscaler = fields.get("Hires upscaler", DEFAULT_UPSCALER)
    fallback = "Latent" if upscaler.startswith("Latent") else "Lanczos"
    req.hires_upscaler = upscaler if upscaler in upscaler_choices() else fallback
    if upscaler != req.hires_upscaler:
        skipped.append(f"Hires upscaler {upscaler} ({req.hires_upscaler} used)")
    return skipped


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _scale_from_resize(text: str, width: int, height: int) -> float | None:
    try:
        wide, high = (int(v) for v in text.lower().split("x"))
    except ValueError:
        return None
    scale = wide / width
    return scale if abs(scale - high / height) < 0.01 else None


# 2. the two passes
def upscale_latents(latents: torch.Tensor, size: tuple[int, int], upscaler: str) -> torch.Tensor:
    """Resize latents (batch, 4, h, w) to `size` = (h, w) with the named A1111 latent upscaler."""
    mode, antialias = LATENT_UPSCALERS[upscaler]
    return torch.nn.functional.interpolate(latents.float(), size=size, mode=mode, antialias=antialias).to(latents.dtype)


def upscale_image(image: Image.Image, size: tuple[int, int], upscaler: str, weights_dir: Path) -> Image.Image:
    """PIL's Lanczos or Nearest, or an upscaler model (then Lanczos to the exact size), as A1111's list offers."""
    if upscaler in IMAGE_UPSCALERS:
        return image.resize(size, IMAGE_UPSCALERS[upscaler])
    return upscale(image, size, upscaler, weights_dir)


@torch.inference_mode()
def decode_latents(pipe, latents: torch.Tensor) -> Image.Image:
    """The image of latents in the UNet's space (what output_type="latent" gives)."""
    decoded = pipe.vae.decode(latents.to(pipe.vae.device, pipe.vae.dtype) / pipe.vae.config.scaling_factor).sample
    return pipe.image_processor.postprocess(decoded, output_type="pil")[0]


def hires_fix(manager, req: ImageRequest, on_step: StepCallback | None = None,
              control: RunControl | None = None) -> RunResult:
    """Make batch_count images, each drawn at width×height, upscaled by hires_scale and redrawn at hires_strength.

    Each image's seed drives both passes (a fresh generator each), so an image can be made again from its seed.
    `req` must have passed check_request and check_hires (text_to_image does both).
    """
    control = control or RunControl()
    width, height = hires_size(req.width, req.height, req.hires_scale)
    latent = req.hires_upscaler in LATENT_UPSCALERS
    second_steps = (req.hires_steps or req.num_inference_steps) if req.hires_strength > 0 else 0
    prompt_embeds, negative_embeds = manager.encode(req.prompt, req.negative_prompt)
    embeds = dict(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds,
                  guidance_scale=req.guidance_scale, callback_on_step_end_tensor_inputs=["latents"])
    first_seed = pick_seed(req.seed)
    first_variation = first_variation_seed(req)
    result = RunResult()
    preview_maker = step_preview(manager) if on_step is not None else None
    for index in range(req.batch_count):
        if control.stopped:
            result.interrupted = True
            break
        seed = (first_seed + index) % (MAX_SEED + 1)
        variation = None if first_variation is None else (first_variation + index) % (MAX_SEED + 1)
        seed = first_seed if variation is not None else seed  # A1111: a variation batch keeps its seed
        vary = dict(seed=seed, variation_seed=variation, strength=req.variation_strength, dtype=prompt_embeds.dtype)
        # 1. the base image
        pipe = manager.pipeline("txt2img", req.sampler, fast=req.fast, **decode_choice(req))
        recorded = record_predictions(pipe.scheduler) if req.denoise_video else None
        report = _shifted(on_step, 0, second_steps)
        output = pipe(**embeds, num_inference_steps=req.num_inference_steps, height=req.height, width=req.width,
                      **seeded_noise(pipe, "txt2img", **vary, height=req.height, width=req.width),
                      output_type="latent" if latent else "pil",
                      callback_on_step_end=step_callback(index, req.batch_count, report, control,
                                                         preview_maker=preview_maker))
        base, frames = output.images, (decode_frames(pipe.vae, recorded, pipe.image_processor) if recorded else [])
        if pipe.interrupt:  # stopped in the first pass: keep what there is, at the base size
            image = decode_latents(pipe, base) if latent else base[0]
            _keep(result, manager, req, seed, image, frames, stopped=True, variation_seed=variation)
            result.notes.append(f"Stopped early: image {index + 1} is unfinished (before Hires. fix).")
            break
        # 2. upscale
        factor = pipe.vae_scale_factor
        upscaled = (upscale_latents(base, (height // factor, width // factor), req.hires_upscaler) if latent
                    else upscale_image(base[0], (width, height), req.hires_upscaler, manager.weights_dir))
        frames = [frame.resize((width, height), Image.LANCZOS) for frame in frames]
        if not second_steps:  # strength 0: the upscaled image as it is
            _keep(result, manager, req, seed, decode_latents(pipe, upscaled) if latent else upscaled, frames,
                  variation_seed=variation)
            continue
        # 3. redraw at the large size
        pipe = manager.pipeline("img2img", req.sampler, fast=req.fast, **decode_choice(req))
        recorded = record_predictions(pipe.scheduler) if req.denoise_video else None
        report = _shifted(on_step, req.num_inference_steps, 0)
        output = pipe(**embeds, image=upscaled, strength=req.hires_strength,
                      num_inference_steps=schedule_length(second_steps, req.hires_strength),
                      **seeded_noise(pipe, "img2img", **vary, height=height, width=width),
                      callback_on_step_end=step_callback(index, req.batch_count, report, control,
                                                         preview_maker=preview_maker))
        if recorded:
            frames += decode_frames(pipe.vae, recorded, pipe.image_processor)
        stopped = bool(pipe.interrupt)
        _keep(result, manager, req, seed, output.images[0], frames, stopped=stopped, variation_seed=variation)
        if stopped:
            result.notes.append(f"Stopped early: image {index + 1} is unfinished.")
            break
    return result


def _keep(result: RunResult, manager, req: ImageRequest, seed: int, image: Image.Image, frames: list,
          stopped: bool = False, variation_seed: int | None = None) -> None:
    result.images.append(GeneratedImage(image, seed, parameters_text(manager, "txt2img", req, seed, variation_seed),
                                        interrupted=stopped, steps=frames, variation_seed=variation_seed))
    result.interrupted = result.interrupted or stopped


def _shifted(on_step: StepCallback | None, done: int, still_to_come: int) -> StepCallback | None:
    """Progress over both passes: a pass's steps are counted after the `done` ones, before `still_to_come`."""
    if on_step is None:
        return None
    return lambda update: on_step(replace(update, step=done + update.step,
                                          total_steps=done + update.total_steps + still_to_come))
