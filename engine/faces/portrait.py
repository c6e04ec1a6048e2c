"""Regenerate only faces and their hair: crop a square around each, work at the model's size, paste back.

Everything outside the face masks stays pixel for pixel, which is what keeps the background and the person's
surroundings intact across ages and variants. With `all_faces`, every usable face is regenerated in its own
region with the same settings and pasted back one by one; faces whose masks overlap share one region.
The invisible watermark goes only where pixels were regenerated (`provenance.watermark_inside`), so the
saved file still equals the input outside the masks; a whole-photo result is wholly generated and keeps
the usual whole-image watermark.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from PIL import Image

from engine import faces, provenance
from engine.extras import restore
from engine.files import images
from engine.image import masks
from engine.image.request import RunControl
from engine.text.limits import excerpt

WORK_SIZE = 512  # SD 1.5's native resolution
IP_CROP_PADDING = 0.2  # the identity adapter sees the face box grown by this share on each side
NO_FACE_IN_RESULT = "no face found in the result"
MARK_SIDE = 320
"""Smallest box side, in pixels, the watermark of a face edit is read in (defaults to 320). The mark is written
only where the face mask is above 0, so a small face's region is widened to this box (kept inside the photo):
the watermark needs 256x256 pixels at least, and with a mask covering part of the box 256 left 9 of 64 bits
wrong on the 512-pixel sample portrait, 288 and 320 left 1 or 2."""


@dataclass
class FacePart:
    """One region that is cropped, regenerated and pasted back: one face, or several whose masks overlap."""

    numbers: list[int]  # the faces it holds, numbered from 1 in `detect_faces` order (1 = largest)
    region: tuple[int, int, int, int]  # square box (left, top, right, bottom) in photo pixels
    mask: Image.Image  # full-size "L", 0 outside `region`
    faces: list = field(default_factory=list)  # the `faces.Face` of each number

    @property
    def label(self) -> str:
        """'face 2' or 'faces 1 and 2', for notes and progress."""
        if len(self.numbers) == 1:
            return f"face {self.numbers[0]}"
        return "faces " + ", ".join(map(str, self.numbers[:-1])) + f" and {self.numbers[-1]}"


@dataclass
class FaceArea:
    """Where in the photo the model may paint, and why there."""

    image: Image.Image  # the whole input photo, RGB
    region: tuple[int, int, int, int]  # the first part's box (the whole photo when `whole`)
    mask: Image.Image  # full-size "L", the union of every part's mask: 0 keeps the input pixel exactly
    found: list = field(default_factory=list)  # every face detected, largest first
    note: str | None = None  # e.g. which of several faces was used
    parts: list[FacePart] = field(default_factory=list)  # the regions regenerated, in paste order
    whole: bool = False  # the whole photo is regenerated (no face needed)

    @property
    def regions(self) -> list[tuple[int, int, int, int]]:
        return [part.region for part in self.parts]

    @property
    def mark_boxes(self) -> list[tuple[int, int, int, int]]:
        """Where the watermark goes, one box per region: the region widened to `MARK_SIDE` inside the photo."""
        return [mark_box(region, self.image.size) for region in self.regions]


def mark_box(region: tuple[int, int, int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """`region` widened, about its centre, to at least `MARK_SIDE` each way, as far as the photo allows."""
    left, top, right, bottom = region
    box = []
    for low, high, limit in ((left, right, size[0]), (top, bottom, size[1])):
        side = min(max(high - low, MARK_SIDE), limit)
        start = min(max((low + high - side) // 2, 0), limit - side)
        box += [start, start + side]
    return box[0], box[2], box[1], box[3]


@dataclass
class FaceStep:
    """Progress inside one frame or variant, from the pipeline's step callback.

    A tab can show it as "face 1/3, age 40 (2/4), step 5/20": `face`/`faces`, `label` (`index`/`total`),
    `step`/`total_steps`. `fraction` is the share of the whole run done, faces × frames × steps.
    """

    index: int  # 1-based frame (aging) or variant (gender swap) being made
    total: int  # frames or variants in the run
    label: str  # "age 40", "age 45.0" for an in-between frame, or "variant 2"
    face: int  # 1-based position of the region being regenerated
    faces: int  # regions regenerated per frame (1 unless all faces)
    step: int  # denoising steps done in this region's run, from 1
    total_steps: int  # denoising steps the run takes (fewer than num_inference_steps when strength < 1)
    face_label: str = "face 1"  # which face(s) the region holds, e.g. "face 2" or "faces 1 and 2"
    num_inference_steps: int | None = None  # the request's steps and strength, whose product is total_steps
    strength: float | None = None

    @property
    def fraction(self) -> float:
        done = ((self.index - 1) * self.faces + (self.face - 1)) * self.total_steps + self.step
        return min(1.0, done / max(1, self.total * self.faces * self.total_steps))


def find_face_area(image, face_index: int | None = None, padding: float = 0.5,
                   whole_photo: bool = False, all_faces: bool = False) -> FaceArea:
    """The largest (or chosen) face grown to take in hair and neck, every usable face, or the whole photo.

    face_index (`int`, *optional*): which face, counting from 0 in `detect_faces` order (largest first);
        defaults to None, the largest. Notes and errors number faces from 1. Ignored with `all_faces`.
    all_faces (`bool`, *optional*, defaults to False): one region per usable face; faces under
        `faces.MIN_FACE` are left as they are (a note says so), and faces whose masks overlap share a region.
    """
    photo = images.load_image(image)
    if whole_photo:
        mask = Image.new("L", photo.size, 255)
        region = (0, 0, *photo.size)
        return FaceArea(photo, region, mask, note="The whole photo is processed.",
                        parts=[FacePart([], region, mask)], whole=True)
    if not 0 <= float(padding) <= 2:
        raise ValueError(f"Padding around the face must be from 0 to 2 (times the face size); got {padding}.")
    found = faces.detect_faces(photo)
    if not all_faces:
        face, note = faces.pick_face(found, face_index)
        region = faces.face_region(face, photo.size, float(padding))
        mask = faces.face_mask(face, photo.size, region)
        number = found.index(face) + 1
        return FaceArea(photo, region, mask, found, note, [FacePart([number], region, mask, [face])])

    # all faces: one part per usable face, then merge parts whose masks overlap
    usable = [(n, f) for n, f in enumerate(found, 1) if faces.usable(f)]
    if not usable:
        faces.pick_face(found)  # raises the no-face or too-small sentence
    parts = []
    for number, face in usable:
        region = faces.face_region(face, photo.size, float(padding))
        parts.append(FacePart([number], region, faces.face_mask(face, photo.size, region), [face]))
    parts, merged = _merge_overlapping(parts, photo.size)
    notes = [f"{len(usable)} of {len(found)} faces were regenerated" if len(usable) < len(found)
             else ("1 face was found and regenerated" if len(found) == 1
                   else f"All {len(found)} faces were regenerated")]
    small = [n for n, f in enumerate(found, 1) if not faces.usable(f)]
    if small:
        which = "face " + str(small[0]) if len(small) == 1 else "faces " + ", ".join(map(str, small))
        notes.append(f"{which} {'is' if len(small) == 1 else 'are'} under {faces.MIN_FACE} pixels across "
                     "and left as in the photo")
    notes += [f"{label} overlap, so they were regenerated together" for label in merged]
    union = np.maximum.reduce([np.asarray(p.mask) for p in parts])
    return FaceArea(photo, parts[0].region, Image.fromarray(union), found, "; ".join(notes) + ".", parts)


def _merge_overlapping(parts: list[FacePart], size: tuple[int, int]) -> tuple[list[FacePart], list[str]]:
    """Join parts whose masks overlap into one square region, so no face is pasted over another."""
    merged_labels = []
    changed = True
    while changed:
        changed = False
        for i in range(len(parts)):
            for j in range(i + 1, len(parts)):
                a, b = parts[i], parts[j]
                if not np.minimum(np.asarray(a.mask), np.asarray(b.mask)).any():
                    continue
                joined = FacePart(sorted(a.numbers + b.numbers), _joined_region(a, b, size),
                                  Image.fromarray(np.maximum(np.asarray(a.mask), np.asarray(b.mask))),
                                  a.faces + b.faces)
                parts = [p for k, p in enumerate(parts) if k not in (i, j)] + [joined]
                parts.sort(key=lambda p: p.numbers[0])
                changed = True
                break
            if changed:
                break
    for part in parts:
        if len(part.numbers) > 1:
            merged_labels.append(part.label[0].upper() + part.label[1:])
    return parts, merged_labels


def _joined_region(a: FacePart, b: FacePart, size: tuple[int, int]) -> tuple[int, int, int, int]:
    left, top = min(a.region[0], b.region[0]), min(a.region[1], b.region[1])
    right, bottom = max(a.region[2], b.region[2]), max(a.region[3], b.region[3])
    side = max(right - left, bottom - top)
    if side > min(size):
        raise ValueError(f"{a.label[0].upper() + a.label[1:]} and {b.label} overlap and together do not fit in "
                         "one square of the photo; lower the padding or choose one face.")
    x = min(max(round((left + right - side) / 2), 0), size[0] - side)
    y = min(max(round((top + bottom - side) / 2), 0), size[1] - side)
    return x, y, x + side, y + side


def work_size(region: tuple[int, int, int, int], size: int = WORK_SIZE) -> tuple[int, int]:
    """The model's resolution for the region: square for a face, aspect-kept for a whole photo."""
    width, height = region[2] - region[0], region[3] - region[1]
    return images.scale_to_long_side(width, height, size)


def crop_boxes(part: FacePart, work: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """The part's face boxes moved from photo pixels into its regenerated crop of size `work`."""
    left, top, right, bottom = part.region
    sx, sy = work[0] / (right - left), work[1] / (bottom - top)
    return [(round((f.x - left) * sx), round((f.y - top) * sy), round((f.x + f.width - left) * sx),
             round((f.y + f.height - top) * sy)) for f in part.faces]


def identity_crop(image: Image.Image, face) -> Image.Image:
    """The face box grown by `IP_CROP_PADDING` on each side and kept inside the photo: what the adapter sees."""
    grow_x, grow_y = round(face.width * IP_CROP_PADDING), round(face.height * IP_CROP_PADDING)
    box = (max(0, face.x - grow_x), max(0, face.y - grow_y),
           min(image.width, face.x + face.width + grow_x), min(image.height, face.y + face.height + grow_y))
    return image.crop(box)


class Regenerator:
    """Renders the face regions again and again (ages, variants) from the same crops and masks.

    keep_identity (`float`, *optional*, defaults to 0): the identity adapter's scale, 0 to 1. Above 0 the
    face crop steers the repaint through the IP-Adapter the manager loads once (`manager.identity_adapter`);
    at 0 the adapter is not touched at all, so the output is exactly what it was without one.
    """

    def __init__(self, manager, area: FaceArea, sampler: str, num_inference_steps: int, guidance_scale: float,
                 strength: float, size: int = WORK_SIZE, fast: bool = False, keep_identity: float = 0.0,
                 fast_decode: bool = False, restore_faces: str | None = None, visibility: float = 1.0):
        self.manager, self.area = manager, area
        self.restore = None
        if restore_faces:
            restore.check_restorer(restore_faces, visibility, manager.weights_dir)
            self.restore = (restore_faces, visibility)
        self.sampler, self.steps, self.guidance, self.strength = sampler, num_inference_steps, guidance_scale, strength
        self.fast = fast
        self.decode = {"fast_decode": True} if fast_decode else {}  # TAESD decodes; the paste-back keeps the rest
        if fast_decode:
            manager.taesd()  # fails now, with where to get it, rather than after the face is found
        self.keep_identity = check_keep_identity(keep_identity)
        if self.keep_identity and area.whole:
            raise ValueError("Keep identity needs a face; turn it off to process the whole photo.")
        if self.keep_identity:
            manager.identity_adapter()  # fails now, with how to get it, rather than after the first frame
        self.crops = []
        for part in area.parts:
            work = work_size(part.region, size)
            self.crops.append((work, area.image.crop(part.region).resize(work, Image.LANCZOS),
                               part.mask.crop(part.region).resize(work, Image.BILINEAR)))
        self._ip_embeds: dict[int, list[torch.Tensor]] = {}

    @property
    def size(self) -> tuple[int, int]:
        return self.crops[0][0]

    def render(self, prompt_embeds: torch.Tensor, negative_embeds: torch.Tensor, seed: int,
               control: RunControl | None = None,
               on_step: Callable[[int, int, int], None] | None = None) -> Image.Image | None:
        """One full-size result; the same seed gives the same starting noise every time. None if stopped.

        Each region gets a fresh generator from `seed`, so a face comes out the same alone or among others.
        on_step(face, step, total_steps) is called after every denoising step (face counts from 1).
        """
        control = control or RunControl()
        result = self.area.image
        for number, (part, (work, crop, crop_mask)) in enumerate(zip(self.area.parts, self.crops), 1):
            out = self._run(number, part, work, crop, crop_mask, prompt_embeds, negative_embeds, seed, control,
                            on_step)
            if out is None:
                return None
            if self.restore:  # on the regenerated crop only, so the paste-back mask still bounds every change
                out = self._restored(out, part, work)
            result = masks.paste_back(result, out, part.region, part.mask)
        if self.area.whole:
            return result  # wholly generated: the PNG writer watermarks it all
        return provenance.watermark_inside(result, self.area.mask, regions=self.area.mark_boxes)

    def _restored(self, out: Image.Image, part: FacePart, work: tuple[int, int]) -> Image.Image:
        """The restorer on the regenerated crop, at the faces found in the photo (the whole photo: found anew)."""
        name, visibility = self.restore
        if not part.faces:
            return restore.restore_faces(out, name, visibility, weights_dir=self.manager.weights_dir)
        return restore.restore_boxes(out, crop_boxes(part, work), name, visibility,
                                     weights_dir=self.manager.weights_dir)

    def _run(self, number, part, work, crop, crop_mask, prompt_embeds, negative_embeds, seed, control, on_step):
        identity = self.keep_identity > 0
        pipe = self.manager.pipeline("inpaint", self.sampler, fast=self.fast and not identity, identity=identity,
                                     **self.decode)

        def step_end(pipe, step, timestep, tensors):
            if control.stopped:
                pipe._interrupt = True
            if on_step:
                on_step(number, step + 1, pipe.num_timesteps)
            return tensors

        extra = {}
        if identity:
            extra["ip_adapter_image_embeds"] = self._identity_embeds(pipe, number, part)
        with self.manager.identity_scale(pipe, self.keep_identity) if identity else _nothing():
            out = pipe(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds, image=crop,
                       mask_image=crop_mask, strength=self.strength, num_inference_steps=self.steps,
                       guidance_scale=self.guidance, width=work[0], height=work[1],
                       generator=torch.Generator("cpu").manual_seed(seed), callback_on_step_end=step_end, **extra)
        return None if pipe.interrupt else out.images[0]

    def _identity_embeds(self, pipe, number: int, part: FacePart) -> list[torch.Tensor]:
        """The face crop's image embeddings, computed once per region and reused for every frame."""
        if number not in self._ip_embeds:
            crops = [identity_crop(self.area.image, face) for face in part.faces]
            with torch.no_grad():
                self._ip_embeds[number] = pipe.prepare_ip_adapter_image_embeds(
                    [crops[0]], None, self.manager.device, 1, self.guidance > 1)
        return self._ip_embeds[number]


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def check_keep_identity(value) -> float:
    """The Keep identity scale as a float from 0 to 1, or a sentence saying what to pass."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if value is None:
        return 0.0
    if not ok or not 0 <= float(value) <= 1:
        raise ValueError(f"Keep identity must be from 0 (off) to 1; got {excerpt(value)}.")
    return float(value)


def identity_distances(area: FaceArea, results: list[Image.Image]) -> list[list[float | None]] | None:
    """Per region, per result: the distance between the face in the photo and the same face in the result.

    None when the dlib packages are missing. A merged region is measured on its first face. For the whole
    photo the largest face found in the photo is measured, when there is one.
    """
    if not faces.identity_available():
        return None
    targets = [(part.faces[0], part.region) for part in area.parts if part.faces]
    if area.whole:
        found = faces.detect_faces(area.image)
        targets = [(found[0], None)] if found else []
    if not targets:
        return None
    return [[faces.face_identity_distance(area.image, image, face, region) for image in results]
            for face, region in targets]


def identity_note(area: FaceArea, labels: list[str], distances: list[list[float | None]] | None) -> str | None:
    """One sentence for the user: each result's distance, or "no face found in the result", per face."""
    if distances is None or not labels:
        return None

    def row(values):
        return ", ".join(f"{label}: {NO_FACE_IN_RESULT if d is None else f'{d:.2f}'}"
                         for label, d in zip(labels, values))

    head = f"Identity distance to the photo (≤ {faces.SAME_PERSON} reads as the same person)"
    if len(distances) == 1:
        return f"{head}: {row(distances[0])}."
    parts = [p for p in area.parts if p.faces]
    return f"{head}: " + "; ".join(f"{part.label}: {row(values)}" for part, values in zip(parts, distances)) + "."
