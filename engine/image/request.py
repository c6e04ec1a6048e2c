"""An image request and what a run gives back, checked once at the engine's edge; every image pass shares them."""
from __future__ import annotations

import math
import secrets
import threading
from dataclasses import dataclass, field, replace
from typing import Callable

from PIL import Image

from engine.files import images
from engine.pipeline.schedulers import DEFAULT_SAMPLER, check_sampler
from engine.text.limits import excerpt

MAX_STEPS = 150
MIN_GUIDANCE, MAX_GUIDANCE = 1.0, 30.0
MAX_SEED = 2**32 - 1
MIN_SIDE, MAX_SIDE = 64, 2048
MAX_BATCH = 16



@dataclass
class ImageRequest:
    """One generation request in diffusers' argument names; defaults follow A1111."""

    prompt: str = ""
    negative_prompt: str = ""
    num_inference_steps: int = 20  # 1..150
    guidance_scale: float = 7.0  # classifier-free guidance, 1..30
    width: int = 512  # multiple of 8; img2img/inpaint use it as the longer side
    height: int = 512  # multiple of 8
    seed: int = -1  # -1 picks a random seed; the one used is reported and saved
    batch_count: int = 1  # images made one after another with seeds seed, seed+1, ...
    sampler: str = DEFAULT_SAMPLER  # an A1111 sampler name from engine.pipeline.schedulers
    strength: float = 0.75  # img2img/inpaint: how much of the image is redrawn
    mask_blur: int = 4  # inpaint: feathering of the mask edge in pixels
    only_masked: bool = False  # inpaint: work on the masked area at full resolution, then paste back
    only_masked_padding: int = 32  # inpaint: context around the mask in "only masked" mode
    denoise_video: bool = False  # also keep the predicted image at every step, for a video (inpaint: pasted back)
    fast: bool = False  # reuse deep UNet features between steps (engine.backends.fastpath): ~2x faster, slightly different
    hires_scale: float | None = None  # txt2img Hires. fix (engine.image.hires): upscale by this, 1..4; None = off
    hires_upscaler: str = "Latent"  # Hires. fix: "Latent" (and its variants) or "Lanczos"/"Nearest" on the image
    hires_steps: int = 0  # Hires. fix: denoising steps of the second pass; 0 = the same as num_inference_steps
    hires_strength: float = 0.5  # Hires. fix: how much of the upscaled image is redrawn, 0..1 (0 = upscale only)
    variation_seed: int = -1  # txt2img/img2img: the seed whose noise is blended in (engine.image.variations); -1 = random
    variation_strength: float = 0.0  # how far toward the variation seed's noise, 0..1; 0 = off (a plain image)

    control_units: tuple = ()  # up to 3 engine.control.units.ControlUnit; checked by engine.control.pipelines
    fast_decode: bool = False  # decode with TAESD (engine.pipeline.tiny_vae): ~16x cheaper, less fine detail


@dataclass
class StepUpdate:
    """Progress of a run, sent after every denoising step."""

    image_index: int
    batch_count: int
    step: int
    total_steps: int
    preview: Image.Image | None = None
    # img2img and inpaint run int(num_inference_steps * strength) of the schedule: the two fields, so a progress
    # line can say where total_steps comes from
    num_inference_steps: int | None = None
    strength: float | None = None

    @property
    def fraction(self) -> float:
        return (self.image_index + self.step / max(self.total_steps, 1)) / self.batch_count


@dataclass
class GeneratedImage:
    """One result with the seed it used and its A1111 parameters text."""

    image: Image.Image
    seed: int
    parameters: str
    interrupted: bool = False
    steps: list[Image.Image] = field(default_factory=list)  # the prediction at every step, if asked for
    variation_seed: int | None = None  # the variation seed used, when the variation strength was above 0


@dataclass
class RunResult:
    """All images of a run, plus sentences about anything adjusted along the way."""

    images: list[GeneratedImage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False


class RunControl:
    """A Stop switch a UI or CLI can flip while a run is going."""

    def __init__(self):
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def reset(self) -> None:
        self._stop.clear()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()


StepCallback = Callable[[StepUpdate], None]


def check_request(req: ImageRequest, task: str = "txt2img",
                  guidance_range: tuple[float, float] = (MIN_GUIDANCE, MAX_GUIDANCE)) -> tuple[ImageRequest, list[str]]:
    """Reject what can't run and round what can be rounded, saying so.

    `guidance_range` is A1111's 1..30 for the tabs; the X/Y/Z plot's CFG sweep passes a wider one (negatives too).
    """
    notes: list[str] = []
    low, high = guidance_range
    steps = as_number(req.num_inference_steps, "Steps")
    if steps != int(steps) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"Steps must be a whole number from 1 to {MAX_STEPS}; got {req.num_inference_steps}.")
    guidance = as_number(req.guidance_scale, "Guidance scale")
    if not low <= guidance <= high:
        raise ValueError(f"Guidance scale must be between {low:g} and {high:g}; got {guidance}.")
    seed = as_number(req.seed, "Seed")
    if seed != int(seed) or not (seed == -1 or 0 <= seed <= MAX_SEED):
        raise ValueError(f"Seed must be -1 (random) or a whole number from 0 to {MAX_SEED}; got {req.seed}.")
    batch = as_number(req.batch_count, "Batch count")
    if batch != int(batch) or not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"Batch count must be from 1 to {MAX_BATCH}; got {req.batch_count}.")
    for name, value in (("Width", req.width), ("Height", req.height)):
        value = as_number(value, name)
        if not MIN_SIDE <= value <= MAX_SIDE:
            raise ValueError(f"{name} must be from {MIN_SIDE} to {MAX_SIDE} pixels; got {value:g}.")
    width, height, note = images.snap_size(int(round(req.width)), int(round(req.height)))
    if note:
        notes.append(note)
    if task != "txt2img":
        strength = as_number(req.strength, "Denoising strength")
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"Denoising strength must be above 0 and at most 1; got {req.strength}.")
    if task == "inpaint":
        for name, value in (("Mask blur", req.mask_blur), ("Only-masked padding", req.only_masked_padding)):
            if not 0 <= as_number(value, name) <= 256:
                raise ValueError(f"{name} must be from 0 to 256 pixels; got {value}.")
    check_sampler(req.sampler)
    return replace(req, num_inference_steps=int(steps), guidance_scale=float(guidance), seed=int(seed),
                   batch_count=int(batch), width=width, height=height,
                   prompt=req.prompt or "", negative_prompt=req.negative_prompt or ""), notes


def as_number(value, name: str) -> float:
    """Numbers arrive from forms and JSON; NaN, infinities and text get one clear sentence."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {excerpt(value)}.") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number; got {excerpt(value) if isinstance(value, str) else value}.")
    return number


def check_prompts(manager, req: ImageRequest) -> None:
    """The prompt and the negative prompt within the manager's cap (--max-prompt-tokens), before any work."""
    manager.check_prompt(req.prompt, "The prompt")
    manager.check_prompt(req.negative_prompt, "The negative prompt")


def pick_seed(seed: int) -> int:
    """-1 means a fresh random seed, reported back so the image can be made again."""
    return secrets.randbelow(MAX_SEED + 1) if seed == -1 else seed
