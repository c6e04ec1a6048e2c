"""Gender swap: the same person as the other gender, regenerating only the face and hair region."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

from PIL import Image

from engine import faces, pnginfo
from engine.generate import MAX_BATCH, ImageRequest, RunControl, check_request, pick_seed
from engine.portrait import WORK_SIZE, Regenerator, find_face_area
from engine.presets import gender_preset
from engine.schedulers import DEFAULT_SAMPLER, a1111_fields


@dataclass
class GenderRequest:
    """One swap; defaults come from presets/gender.json."""

    direction: str  # "woman" or "man": the gender to turn the person into
    strength: float = 0.6
    num_inference_steps: int = 30
    guidance_scale: float = 7.0
    seed: int = -1  # variant n uses seed + n
    variants: int = 2
    sampler: str = DEFAULT_SAMPLER
    face_index: int | None = None
    padding: float = 0.5
    whole_photo: bool = False
    size: int = WORK_SIZE
    fast: bool = False  # reuse deep UNet features between steps: about 2x faster


@dataclass
class Variant:
    image: Image.Image  # full size, the input's size
    seed: int
    parameters: str  # A1111 parameters text for the PNG
    identity: float | None = None  # face distance to the input where a face-embedding model is installed


@dataclass
class GenderResult:
    variants: list[Variant]
    original: Image.Image
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False


def check_gender(req: GenderRequest) -> GenderRequest:
    """Reject unknown directions and out-of-range settings before any work."""
    direction = (req.direction or "").strip().lower().removeprefix("to ").strip()
    gender_preset().prompts_for(direction)
    if not 1 <= int(req.variants) <= MAX_BATCH:
        raise ValueError(f"Variants must be from 1 to {MAX_BATCH}; got {req.variants}.")
    checked, _ = check_request(ImageRequest(num_inference_steps=req.num_inference_steps,
                                            guidance_scale=req.guidance_scale, seed=req.seed,
                                            sampler=req.sampler, strength=req.strength), task="img2img")
    return GenderRequest(**{**asdict(req), "direction": direction, "seed": pick_seed(checked.seed),
                            "variants": int(req.variants), "num_inference_steps": checked.num_inference_steps,
                            "guidance_scale": checked.guidance_scale})


def gender_swap(manager, req: GenderRequest, image, on_variant: Callable[[int, int, Image.Image], None] | None = None,
                control: RunControl | None = None) -> GenderResult:
    """Make `variants` versions, each from its own seed; the output keeps the input's size."""
    req = check_gender(req)
    control = control or RunControl()
    area = find_face_area(image, req.face_index, req.padding, req.whole_photo)
    prompt, negative = gender_preset().prompts_for(req.direction)
    prompt_embeds, negative_embeds = manager.encode(prompt, negative)
    regenerator = Regenerator(manager, area, req.sampler, req.num_inference_steps, req.guidance_scale,
                              req.strength, req.size, req.fast)
    result = GenderResult([], area.image, [n for n in (area.note,) if n])
    for n in range(req.variants):
        if control.stopped:
            break
        seed = (req.seed + n) % 2**32
        out = regenerator.render(prompt_embeds, negative_embeds, seed, control)
        if out is None:
            break
        text = _parameters(manager, req, prompt, negative, seed, area.image.size)
        result.variants.append(Variant(out, seed, text, faces.identity_distance(area.image, out)))
        if on_variant:
            on_variant(n + 1, req.variants, out)
    if len(result.variants) < req.variants:
        result.interrupted = True
        result.notes.append(f"Stopped: {len(result.variants)} of {req.variants} variants were made.")
    return result


def _parameters(manager, req: GenderRequest, prompt: str, negative: str, seed: int, size) -> str:
    settings = {"Steps": req.num_inference_steps, **a1111_fields(req.sampler), "CFG scale": f"{req.guidance_scale:g}",
                "Seed": seed, "Size": f"{size[0]}x{size[1]}", "Model": manager.model_label,
                "Denoising strength": f"{req.strength:g}", "Gender swap": f"to {req.direction}",
                "Version": "Diffusion Studio"}
    return pnginfo.format_parameters(prompt, negative, settings)
