"""Gender swap: the same person as the other gender, regenerating only the face and hair region."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

from PIL import Image

from engine.faces.portrait import (
    FaceStep,
    Regenerator,
    check_keep_identity,
    find_face_area,
    identity_distances,
    identity_note,
)
from engine.files import pnginfo
from engine.image.parameters import decoder_field, replica_field, restoration_fields
from engine.image.request import MAX_BATCH, ImageRequest, RunControl, check_request, pick_seed
from engine.pipeline.schedulers import DEFAULT_SAMPLER, a1111_fields
from engine.text.presets import gender_preset


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
    face_index: int | None = None  # which detected face, counting from 0 (0 = largest); None = largest
    all_faces: bool = False  # regenerate every usable face, each in its own region; face_index is then unused
    padding: float = 0.5
    whole_photo: bool = False
    size: int | None = None  # the working resolution; None = the model's own (512; 128 for tiny)
    fast: bool = False  # reuse deep UNet features between steps: about 2x faster
    keep_identity: float = 0.0  # identity adapter scale, 0 (off) to 1; about 0.6 keeps the face (needs its weights)
    fast_decode: bool = False  # decode with TAESD (engine.pipeline.tiny_vae); outside the face the photo is kept
    restore_faces: str | None = None  # a restorer from engine.extras.restore.list_restorers; None = off
    visibility: float = 1.0  # how much of the restored face shows, 0 to 1


@dataclass
class Variant:
    image: Image.Image  # full size, the input's size
    seed: int
    parameters: str  # A1111 parameters text for the PNG
    identity: float | None = None  # face distance to the input, measured on the chosen face's region (the
    # largest over the faces with all faces); None when not measurable or no face was found there in the result


@dataclass
class GenderResult:
    variants: list[Variant]
    original: Image.Image
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    identity_by_face: list[list[float | None]] | None = None  # [region][variant]; None entry: no face found there
    identity_note: str | None = None  # the distances in one sentence, "no face found in the result" where so


def check_gender(req: GenderRequest) -> GenderRequest:
    """Reject unknown directions and out-of-range settings before any work."""
    direction = (req.direction or "").strip().lower().removeprefix("to ").strip()
    gender_preset().prompts_for(direction)
    keep_identity = check_keep_identity(req.keep_identity)
    if not 1 <= int(req.variants) <= MAX_BATCH:
        raise ValueError(f"Variants must be from 1 to {MAX_BATCH}; got {req.variants}.")
    checked, _ = check_request(ImageRequest(num_inference_steps=req.num_inference_steps,
                                            guidance_scale=req.guidance_scale, seed=req.seed,
                                            sampler=req.sampler, strength=req.strength), task="img2img")
    return GenderRequest(**{**asdict(req), "direction": direction, "seed": pick_seed(checked.seed),
                            "variants": int(req.variants), "num_inference_steps": checked.num_inference_steps,
                            "guidance_scale": checked.guidance_scale, "all_faces": bool(req.all_faces),
                            "keep_identity": keep_identity})


def gender_swap(manager, req: GenderRequest, image, on_variant: Callable[[int, int, Image.Image], None] | None = None,
                control: RunControl | None = None, on_step: Callable[[FaceStep], None] | None = None) -> GenderResult:
    """The plain model for the whole swap: another request's LoRAs never reach it (manager.lora_scope)."""
    with manager.lora_scope():
        return _gender_swap(manager, req, image, on_variant, control, on_step)


def _gender_swap(manager, req: GenderRequest, image, on_variant: Callable[[int, int, Image.Image], None] | None = None,
                 control: RunControl | None = None, on_step: Callable[[FaceStep], None] | None = None) -> GenderResult:
    """Make `variants` versions, each from its own seed; the output keeps the input's size.

    on_variant(done, total, image) is called per finished variant; on_step gets a `FaceStep` after every
    denoising step of every face, from the first step of the first variant.
    """
    req = check_gender(req)
    control = control or RunControl()
    area = find_face_area(image, req.face_index, req.padding, req.whole_photo, req.all_faces)
    prompt, negative = gender_preset().prompts_for(req.direction)
    prompt_embeds, negative_embeds = manager.encode(prompt, negative)
    regenerator = Regenerator(manager, area, req.sampler, req.num_inference_steps, req.guidance_scale,
                              req.strength, req.size or manager.defaults().width, req.fast,
                              req.keep_identity, fast_decode=req.fast_decode,
                              restore_faces=req.restore_faces, visibility=req.visibility)
    result = GenderResult([], area.image, [n for n in (area.note,) if n])
    for n in range(req.variants):
        if control.stopped:
            break
        seed = (req.seed + n) % 2**32
        report = None
        if on_step:
            def report(face, step, total_steps, n=n):
                part = area.parts[face - 1]
                on_step(FaceStep(n + 1, req.variants, f"variant {n + 1}", face, len(area.parts), step, total_steps,
                                 part.label if part.numbers else "whole photo", req.num_inference_steps,
                                 req.strength))
        out = regenerator.render(prompt_embeds, negative_embeds, seed, control, report)
        if out is None:
            break
        text = _parameters(manager, req, prompt, negative, seed, area.image.size)
        result.variants.append(Variant(out, seed, text))
        if on_variant:
            on_variant(n + 1, req.variants, out)
    _measure(area, result)
    if len(result.variants) < req.variants:
        result.interrupted = True
        result.notes.append(f"Stopped: {len(result.variants)} of {req.variants} variants were made.")
    return result


def _parameters(manager, req: GenderRequest, prompt: str, negative: str, seed: int, size) -> str:
    settings = {"Steps": req.num_inference_steps, **a1111_fields(req.sampler), "CFG scale": f"{req.guidance_scale:g}",
                "Seed": seed, "Size": f"{size[0]}x{size[1]}", "Model": manager.model_label,
                "Denoising strength": f"{req.strength:g}", "Gender swap": f"to {req.direction}",
                "Faces": "all" if req.all_faces else None,
                "Keep identity": f"{req.keep_identity:g}" if req.keep_identity else None,
                **decoder_field(req), **restoration_fields(req), **replica_field(manager),
                "Version": "Diffusion Studio"}
    return pnginfo.format_parameters(prompt, negative, settings)


def _measure(area, result: GenderResult) -> None:
    """Each variant's identity distance on the edited face(s), and the sentence that reports them."""
    if not result.variants:
        return
    by_face = identity_distances(area, [v.image for v in result.variants])
    if by_face:
        for variant, column in zip(result.variants, zip(*by_face)):
            variant.identity = None if any(d is None for d in column) else max(column)
    result.identity_by_face = by_face
    result.identity_note = identity_note(area, [f"variant {n}" for n in range(1, len(result.variants) + 1)], by_face)
