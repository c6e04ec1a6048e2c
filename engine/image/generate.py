"""Text to image, image to image and inpaint over the shared weights, with progress, previews and a real Stop."""
from __future__ import annotations

import io
import math
import time
from dataclasses import replace
from pathlib import Path

from PIL import Image

from engine import provenance
from engine.backends import fast_choice
from engine.control import pipelines as control_pipelines
from engine.control.units import units_from_fields
from engine.files import images, pnginfo
from engine.image import masks
from engine.image.hires import check_hires, hires_fix, hires_from_fields
from engine.image.parameters import parameters_text
from engine.image.request import (
    MAX_GUIDANCE,
    MAX_SEED,
    MIN_GUIDANCE,
    GeneratedImage,
    ImageRequest,
    RunControl,
    RunResult,
    StepCallback,
    check_prompts,
    check_request,
    pick_seed,
)
from engine.image.steps import decode_choice, step_callback, step_preview
from engine.image.variation_noise import seeded_noise
from engine.image.variations import check_variation, first_variation_seed, variation_from_fields
from engine.pipeline.schedulers import from_a1111_fields
from engine.pipeline.tiny_vae import DECODER_FIELD, DECODER_VALUE
from engine.video.denoise import decode_frames, record_predictions


# 1. the three tasks
def text_to_image(manager, req: ImageRequest, on_step: StepCallback | None = None,
                  control: RunControl | None = None, *,
                  guidance_range: tuple[float, float] = (MIN_GUIDANCE, MAX_GUIDANCE)) -> RunResult:
    """Images from a prompt."""
    req, notes = check_request(req, "txt2img", guidance_range)
    req = check_variation(req, "txt2img")

    req = control_pipelines.check_control(req, "txt2img")
    check_prompts(manager, req)
    if req.hires_scale is not None:  # draw small, upscale, redraw large
        req, hires_notes = check_hires(req, manager.weights_dir)
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
    req = check_variation(req, "img2img")

    req = control_pipelines.check_control(req, "img2img")
    check_prompts(manager, req)
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
    req = check_variation(req, "inpaint")

    req = control_pipelines.check_control(req, "inpaint")
    check_prompts(manager, req)
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


# 2. the shared loop
def _run(manager, task: str, req: ImageRequest, task_kwargs: dict, on_step: StepCallback | None,
         control: RunControl | None) -> RunResult:
    """Make batch_count images one by one, each with its own seed, generator and scheduler."""
    fast = req.fast
    req = fast_choice.resolve(manager, req)  # on OpenVINO Fast is Few-step mode
    start = time.perf_counter()
    with manager.lora_scope(req.prompt, req.negative_prompt):  # the prompt's LoRAs, for this request only
        result = _run_images(manager, task, req, task_kwargs, on_step, control)
    if not result.interrupted and not req.control_units:
        fast_choice.record(manager.backend, fast, time.perf_counter() - start,
                           task_kwargs.get("width") or req.width or 512, task_kwargs.get("height") or req.height or 512,
                           len(result.images))
    return result


def _run_images(manager, task: str, req: ImageRequest, task_kwargs: dict, on_step: StepCallback | None,
                control: RunControl | None) -> RunResult:
    control = control or RunControl()
    prompt_embeds, negative_embeds = manager.encode(req.prompt, req.negative_prompt)
    controlled = control_pipelines.prepare(manager, req, task, task_kwargs) if req.control_units else None
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
        pipe = (control_pipelines.control_pipeline(manager, task, req.sampler, controlled, **decode_choice(req))
                if controlled
                else manager.pipeline(task, req.sampler, fast=req.fast, **decode_choice(req)))
        if req.guidance_scale < 1:
            pipe = always_guided(pipe)
        recorded = record_predictions(pipe.scheduler) if req.denoise_video else None
        schedule = (req.num_inference_steps, req.strength) if "strength" in task_kwargs else (None, None)
        callback = step_callback(index, req.batch_count, on_step, control, *schedule, preview_maker=preview_maker)
        output = pipe(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds,
                      num_inference_steps=req.num_inference_steps, guidance_scale=req.guidance_scale,
                      **seeded_noise(pipe, task, seed, variation, req.variation_strength, prompt_embeds.dtype,
                                     req.height, req.width),
                      callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents"],
                      **task_kwargs, **(controlled.kwargs if controlled else {}))
        stopped = bool(pipe.interrupt)
        result.images.append(GeneratedImage(output.images[0], seed, parameters_text(manager, task, req, seed, variation),
                                            interrupted=stopped, variation_seed=variation))
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


# 3. reading PNG info back
def request_from_parameters(text: str) -> tuple[ImageRequest, list[str]]:
    """Turn a PNG's parameters text back into a request, listing fields we could not use."""
    fields = pnginfo.parse_parameters(text)
    skipped: list[str] = []
    req = ImageRequest(prompt=fields.get("prompt", ""), negative_prompt=fields.get("negative_prompt", ""))
    conversions = {"Steps": ("num_inference_steps", int), "CFG scale": ("guidance_scale", float),
                   "Seed": ("seed", int), "Denoising strength": ("strength", float), "Mask blur": ("mask_blur", int),
                   "Masked area padding": ("only_masked_padding", int)}
    for key, (attr, kind) in conversions.items():
        if key in fields:
            try:
                number = float(fields[key])
                if not math.isfinite(number):  # "Steps: inf" would load as an overflow, "CFG scale: nan" as NaN
                    raise ValueError(key)
                setattr(req, attr, kind(number))
            except ValueError:
                skipped.append(key)
    if "Size" in fields:
        try:
            req.width, req.height = (int(v) for v in fields["Size"].lower().split("x"))
        except ValueError:
            skipped.append("Size")
    req.fast = "Fast" in fields
    req.only_masked = fields.get("Inpaint area") == "Only masked"
    skipped += variation_from_fields(req, fields)
    req.fast_decode = fields.get(DECODER_FIELD) == DECODER_VALUE
    if "Hires upscale" in fields or "Hires resize" in fields:
        skipped += hires_from_fields(req, fields)
    req.control_units, control_skipped = units_from_fields(fields)
    skipped += control_skipped
    if "Sampler" in fields:
        name = from_a1111_fields(fields["Sampler"], fields.get("Schedule type"))
        if name:
            req.sampler = name
        else:
            skipped.append("Sampler")
    return req, skipped

