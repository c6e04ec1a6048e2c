"""Text to image, image to image and inpaint over the shared weights, with progress, previews and a real Stop."""
from __future__ import annotations

import io
import math
import secrets
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from engine import images, masks, pnginfo, provenance
from engine.preview import latents_to_preview
from engine.schedulers import DEFAULT_SAMPLER, a1111_fields, check_sampler
from engine.video.denoise import decode_frames, record_predictions

MAX_STEPS = 150
MIN_GUIDANCE, MAX_GUIDANCE = 1.0, 30.0
MAX_SEED = 2**32 - 1
MIN_SIDE, MAX_SIDE = 64, 2048
MAX_BATCH = 16
PREVIEW_EVERY = 4


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
    sampler: str = DEFAULT_SAMPLER  # an A1111 sampler name from engine.schedulers
    strength: float = 0.75  # img2img/inpaint: how much of the image is redrawn
    mask_blur: int = 4  # inpaint: feathering of the mask edge in pixels
    only_masked: bool = False  # inpaint: work on the masked area at full resolution, then paste back
    only_masked_padding: int = 32  # inpaint: context around the mask in "only masked" mode
    denoise_video: bool = False  # also keep the predicted image at every step, for a video (inpaint: pasted back)
    fast: bool = False  # reuse deep UNet features between steps (engine.backends.fastpath): ~2x faster, slightly different
    hires_scale: float | None = None  # txt2img Hires. fix (engine.hires): upscale by this, 1..4; None = off
    hires_upscaler: str = "Latent"  # Hires. fix: "Latent" (and its variants) or "Lanczos"/"Nearest" on the image
    hires_steps: int = 0  # Hires. fix: denoising steps of the second pass; 0 = the same as num_inference_steps
    hires_strength: float = 0.5  # Hires. fix: how much of the upscaled image is redrawn, 0..1 (0 = upscale only)


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


# 1. checking inputs
def check_request(req: ImageRequest, task: str = "txt2img",
                  guidance_range: tuple[float, float] = (MIN_GUIDANCE, MAX_GUIDANCE)) -> tuple[ImageRequest, list[str]]:
    """Reject what can't run and round what can be rounded, saying so.

    `guidance_range` is A1111's 1..30 for the tabs; the X/Y/Z plot's CFG sweep passes a wider one (negatives too).
    """
    notes: list[str] = []
    low, high = guidance_range
    steps = _number(req.num_inference_steps, "Steps")
    if steps != int(steps) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"Steps must be a whole number from 1 to {MAX_STEPS}; got {req.num_inference_steps}.")
    guidance = _number(req.guidance_scale, "Guidance scale")
    if not low <= guidance <= high:
        raise ValueError(f"Guidance scale must be between {low:g} and {high:g}; got {guidance}.")
    seed = _number(req.seed, "Seed")
    if seed != int(seed) or not (seed == -1 or 0 <= seed <= MAX_SEED):
        raise ValueError(f"Seed must be -1 (random) or a whole number from 0 to {MAX_SEED}; got {req.seed}.")
    batch = _number(req.batch_count, "Batch count")
    if batch != int(batch) or not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"Batch count must be from 1 to {MAX_BATCH}; got {req.batch_count}.")
    for name, value in (("Width", req.width), ("Height", req.height)):
        value = _number(value, name)
        if not MIN_SIDE <= value <= MAX_SIDE:
            raise ValueError(f"{name} must be from {MIN_SIDE} to {MAX_SIDE} pixels; got {value:g}.")
    width, height, note = images.snap_size(int(round(req.width)), int(round(req.height)))
    if note:
        notes.append(note)
    if task != "txt2img":
        strength = _number(req.strength, "Denoising strength")
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"Denoising strength must be above 0 and at most 1; got {req.strength}.")
    if task == "inpaint":
        for name, value in (("Mask blur", req.mask_blur), ("Only-masked padding", req.only_masked_padding)):
            if not 0 <= _number(value, name) <= 256:
                raise ValueError(f"{name} must be from 0 to 256 pixels; got {value}.")
    check_sampler(req.sampler)
    return replace(req, num_inference_steps=int(steps), guidance_scale=float(guidance), seed=int(seed),
                   batch_count=int(batch), width=width, height=height,
                   prompt=req.prompt or "", negative_prompt=req.negative_prompt or ""), notes


def _number(value, name: str) -> float:
    """Numbers arrive from forms and JSON; NaN, infinities and text get one clear sentence."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}.") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number; got {value}.")
    return number


def pick_seed(seed: int) -> int:
    """-1 means a fresh random seed, reported back so the image can be made again."""
    return secrets.randbelow(MAX_SEED + 1) if seed == -1 else seed


# 2. the three tasks
def text_to_image(manager, req: ImageRequest, on_step: StepCallback | None = None,
                  control: RunControl | None = None, *,
                  guidance_range: tuple[float, float] = (MIN_GUIDANCE, MAX_GUIDANCE)) -> RunResult:
    """Images from a prompt."""
    req, notes = check_request(req, "txt2img", guidance_range)
    if req.hires_scale is not None:  # draw small, upscale, redraw large
        from engine.hires import check_hires, hires_fix

        req, hires_notes = check_hires(req)
        result = hires_fix(manager, req, on_step, control)
        result.notes[:0] = notes + hires_notes
        return result
    result = _run(manager, "txt2img", req, {"height": req.height, "width": req.width}, on_step, control)
    result.notes[:0] = notes
    return result


def image_to_image(manager, req: ImageRequest, image, on_step: StepCallback | None = None,
                   control: RunControl | None = None, *,
                   guidance_range: tuple[float, float] = (MIN_GUIDANCE, MAX_GUIDANCE)) -> RunResult:
    """Redraw an image; it keeps its aspect ratio, its longer side set by the larger of width and height."""
    req, notes = check_request(req, "img2img", guidance_range)
    init = images.load_image(image)
    width, height = images.scale_to_long_side(*init.size, max(req.width, req.height))
    if max(width, height) > 2 * max(init.size):  # say so, or a 1x1 start image silently becomes a 64x64 result
        notes.append(f"The start image is only {init.width}×{init.height} px; it was enlarged to {width}×{height} "
                     "to work on, so little of its detail can show.")
    req = replace(req, width=width, height=height)
    work = init.resize((width, height), Image.LANCZOS)
    result = _run(manager, "img2img", req, {"image": work, "strength": req.strength}, on_step, control)
    result.notes[:0] = notes
    return result


def inpaint(manager, req: ImageRequest, image, mask, on_step: StepCallback | None = None,
            control: RunControl | None = None) -> RunResult:
    """Redraw the painted area only; everything outside the mask stays pixel for pixel."""
    req, notes = check_request(req, "inpaint")
    original = images.load_image(image)
    if isinstance(mask, (str, Path, bytes)):
        mask = masks.read_mask_file(mask if not isinstance(mask, bytes) else io.BytesIO(mask))
    full_mask = masks.mask_to_l(mask, original.size)
    soft_mask = masks.blur_mask(full_mask, req.mask_blur)
    box = _inpaint_box(full_mask, req, original.size)
    width, height = (req.width, req.height) if req.only_masked else images.scale_to_long_side(
        *original.size, max(req.width, req.height))
    req = replace(req, width=width, height=height)
    work_image = original.crop(box).resize((width, height), Image.LANCZOS)
    work_mask = soft_mask.crop(box).resize((width, height), Image.BILINEAR)
    result = _run(manager, "inpaint", req, {"image": work_image, "mask_image": work_mask, "strength": req.strength,
                                            "height": height, "width": width}, on_step, control)
    for item in result.images:
        pasted = masks.paste_back(original, item.image, box, soft_mask)
        item.image = provenance.watermark_inside(pasted, soft_mask)  # marked where redrawn, nowhere else
        item.steps = [masks.paste_back(original, frame, box, soft_mask) for frame in item.steps]  # the full photo
    result.notes[:0] = notes
    return result


def _inpaint_box(mask: Image.Image, req: ImageRequest, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The region that is redrawn: the padded mask area in "only masked" mode, else the whole picture."""
    if req.only_masked:
        return masks.masked_crop_box(mask, req.only_masked_padding, req.width, req.height)
    return (0, 0, *size)


def inpaint_preview(image, mask, mask_blur: int = 4, only_masked: bool = False, padding: int = 32,
                    width: int = 512, height: int = 512) -> Image.Image:
    """The photo with the blurred mask tinted red and, in "only masked" mode, the work area outlined."""
    from PIL import ImageDraw

    original = images.load_image(image)
    soft = masks.blur_mask(masks.mask_to_l(mask, original.size), mask_blur)
    tint = Image.new("RGB", original.size, (255, 40, 40))
    shown = Image.composite(tint, original, soft.point(lambda v: v * 6 // 10))
    if only_masked:
        box = masks.masked_crop_box(masks.mask_to_l(mask, original.size), padding, width, height)
        ImageDraw.Draw(shown).rectangle(box, outline=(255, 220, 0), width=max(2, original.width // 200))
    return shown


# 3. the shared loop
def _run(manager, task: str, req: ImageRequest, task_kwargs: dict, on_step: StepCallback | None,
         control: RunControl | None) -> RunResult:
    """Make batch_count images one by one, each with its own seed, generator and scheduler."""
    with manager.lora_scope(req.prompt, req.negative_prompt):  # the prompt's LoRAs, for this request only
        return _run_images(manager, task, req, task_kwargs, on_step, control)


def _run_images(manager, task: str, req: ImageRequest, task_kwargs: dict, on_step: StepCallback | None,
                control: RunControl | None) -> RunResult:
    control = control or RunControl()
    prompt_embeds, negative_embeds = manager.encode(req.prompt, req.negative_prompt)
    first_seed = pick_seed(req.seed)
    result = RunResult()
    for index in range(req.batch_count):
        if control.stopped:
            result.interrupted = True
            break
        seed = (first_seed + index) % (MAX_SEED + 1)
        pipe = manager.pipeline(task, req.sampler, fast=req.fast)
        if req.guidance_scale < 1:
            pipe = always_guided(pipe)
        recorded = record_predictions(pipe.scheduler) if req.denoise_video else None
        schedule = (req.num_inference_steps, req.strength) if "strength" in task_kwargs else (None, None)
        callback = _step_callback(index, req.batch_count, on_step, control, *schedule)
        output = pipe(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds,
                      num_inference_steps=req.num_inference_steps, guidance_scale=req.guidance_scale,
                      generator=torch.Generator("cpu").manual_seed(seed),
                      callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents"],
                      **task_kwargs)
        stopped = bool(pipe.interrupt)
        result.images.append(GeneratedImage(output.images[0], seed, parameters_text(manager, task, req, seed),
                                            interrupted=stopped))
        if recorded:
            result.images[-1].steps = decode_frames(pipe.vae, recorded, pipe.image_processor)
        if stopped:
            result.interrupted = True
            result.notes.append(f"Stopped early: image {index + 1} is unfinished.")
            break
    return result


_GUIDED: dict[type, type] = {}


def always_guided(pipe):
    """The same pipeline (shared components) that applies classifier-free guidance at every scale.

    diffusers skips guidance at guidance_scale <= 1 and uses the prompt's prediction alone. A CFG sweep
    below 1 (StableFused's video runs from -5) needs the formula uncond + scale * (cond - uncond) itself:
    at 0 it gives the unconditional image, below 0 it steers away from the prompt.
    """
    cls = type(pipe)
    if cls not in _GUIDED:
        _GUIDED[cls] = type(f"Guided{cls.__name__}", (cls,),
                            {"do_classifier_free_guidance": property(lambda self: True)})
    guided = _GUIDED[cls](**pipe.components, requires_safety_checker=False)
    guided.set_progress_bar_config(disable=True)
    return guided


def _step_callback(index: int, batch_count: int, on_step: StepCallback | None, control: RunControl,
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


# 4. provenance
def replica_field(manager) -> dict:
    """PNG info's `Replica` on a Ray Serve replica (engine.backends.ray), so an image says which worker made it."""
    replica = getattr(manager, "replica", None)
    return {"Replica": replica} if replica else {}


def parameters_text(manager, task: str, req: ImageRequest, seed: int) -> str:
    """A1111's parameters text, so the PNG can be read back by A1111 tools and by this app."""
    settings: dict[str, object] = {"Steps": req.num_inference_steps, **a1111_fields(req.sampler),
                                   "CFG scale": _short(req.guidance_scale), "Seed": seed,
                                   "Size": f"{req.width}x{req.height}", "Model": manager.model_label}
    if task != "txt2img":
        settings["Denoising strength"] = _short(req.strength)
    elif req.hires_scale is not None:  # A1111's Hires. fix fields; Size stays the first pass's
        settings["Denoising strength"] = _short(req.hires_strength)
        settings["Hires upscale"] = _short(req.hires_scale)
        settings["Hires steps"] = req.hires_steps or None
        settings["Hires upscaler"] = req.hires_upscaler
    if task == "inpaint":
        settings["Mask blur"] = req.mask_blur
        if req.only_masked:
            settings["Inpaint area"] = "Only masked"
            settings["Masked area padding"] = req.only_masked_padding
    if req.fast:
        settings["Fast"] = "DeepCache"
    backend_used = getattr(manager, "backend_used", None)
    settings["Backend"] = {"openvino": "OpenVINO", "torch": "PyTorch"}.get(
        backend_used() if callable(backend_used) else "torch", "PyTorch")
    network_fields = getattr(manager, "network_fields", None)
    if callable(network_fields):
        settings.update(network_fields(req.prompt, req.negative_prompt))  # Lora hashes, TI hashes
    settings.update(replica_field(manager))
    settings["Version"] = "Diffusion Studio"
    return pnginfo.format_parameters(req.prompt, req.negative_prompt, settings)


def _short(value: float) -> str:
    """7.0 -> '7', 0.75 -> '0.75', as A1111 writes them."""
    return f"{value:g}"


def request_from_parameters(text: str) -> tuple[ImageRequest, list[str]]:
    """Turn a PNG's parameters text back into a request, listing fields we could not use."""
    from engine.schedulers import from_a1111_fields

    fields = pnginfo.parse_parameters(text)
    skipped: list[str] = []
    req = ImageRequest(prompt=fields.get("prompt", ""), negative_prompt=fields.get("negative_prompt", ""))
    conversions = {"Steps": ("num_inference_steps", int), "CFG scale": ("guidance_scale", float),
                   "Seed": ("seed", int), "Denoising strength": ("strength", float), "Mask blur": ("mask_blur", int)}
    for key, (attr, kind) in conversions.items():
        if key in fields:
            try:
                setattr(req, attr, kind(float(fields[key])))
            except ValueError:
                skipped.append(key)
    if "Size" in fields:
        try:
            req.width, req.height = (int(v) for v in fields["Size"].lower().split("x"))
        except ValueError:
            skipped.append("Size")
    req.fast = "Fast" in fields
    if "Hires upscale" in fields or "Hires resize" in fields:
        from engine.hires import hires_from_fields

        skipped += hires_from_fields(req, fields)
    if "Sampler" in fields:
        name = from_a1111_fields(fields["Sampler"], fields.get("Schedule type"))
        if name:
            req.sampler = name
        else:
            skipped.append("Sampler")
    return req, skipped

