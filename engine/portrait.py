"""Regenerate only a face and its hair: crop a square around it, work at the model's size, paste back.

Everything outside the face mask stays pixel for pixel, which is what keeps the background and the person's
surroundings intact across ages and variants.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from engine import faces, images, masks
from engine.generate import RunControl

WORK_SIZE = 512  # SD 1.5's native resolution


@dataclass
class FaceArea:
    """Where in the photo the model may paint, and why there."""

    image: Image.Image  # the whole input photo, RGB
    region: tuple[int, int, int, int]  # the box that is cropped, worked on and pasted back
    mask: Image.Image  # full-size "L": 0 keeps the input pixel exactly
    found: list = field(default_factory=list)  # every face detected, largest first
    note: str | None = None  # e.g. which of several faces was used


def find_face_area(image, face_index: int | None = None, padding: float = 0.5,
                   whole_photo: bool = False) -> FaceArea:
    """The largest (or chosen) face grown to take in hair and neck, or the whole photo when asked."""
    photo = images.load_image(image)
    if whole_photo:
        return FaceArea(photo, (0, 0, *photo.size), Image.new("L", photo.size, 255),
                        note="The whole photo is processed.")
    if not 0 <= float(padding) <= 2:
        raise ValueError(f"Padding around the face must be from 0 to 2 (times the face size); got {padding}.")
    found = faces.detect_faces(photo)
    face, note = faces.pick_face(found, face_index)
    region = faces.face_region(face, photo.size, float(padding))
    return FaceArea(photo, region, faces.face_mask(face, photo.size, region), found, note)


def work_size(region: tuple[int, int, int, int], size: int = WORK_SIZE) -> tuple[int, int]:
    """The model's resolution for the region: square for a face, aspect-kept for a whole photo."""
    width, height = region[2] - region[0], region[3] - region[1]
    return images.scale_to_long_side(width, height, size)


class Regenerator:
    """Renders the face region again and again (ages, variants) from the same crop and mask."""

    def __init__(self, manager, area: FaceArea, sampler: str, num_inference_steps: int, guidance_scale: float,
                 strength: float, size: int = WORK_SIZE, fast: bool = False):
        self.manager, self.area = manager, area
        self.sampler, self.steps, self.guidance, self.strength = sampler, num_inference_steps, guidance_scale, strength
        self.fast = fast
        self.size = work_size(area.region, size)
        self.crop = area.image.crop(area.region).resize(self.size, Image.LANCZOS)
        self.crop_mask = area.mask.crop(area.region).resize(self.size, Image.BILINEAR)

    def render(self, prompt_embeds: torch.Tensor, negative_embeds: torch.Tensor, seed: int,
               control: RunControl | None = None) -> Image.Image | None:
        """One full-size result; the same seed gives the same starting noise every time. None if stopped."""
        control = control or RunControl()
        pipe = self.manager.pipeline("inpaint", self.sampler, fast=self.fast)

        def stop_check(pipe, step, timestep, tensors):
            if control.stopped:
                pipe._interrupt = True
            return tensors

        out = pipe(prompt_embeds=prompt_embeds, negative_prompt_embeds=negative_embeds, image=self.crop,
                   mask_image=self.crop_mask, strength=self.strength, num_inference_steps=self.steps,
                   guidance_scale=self.guidance, width=self.size[0], height=self.size[1],
                   generator=torch.Generator("cpu").manual_seed(seed), callback_on_step_end=stop_check)
        if pipe.interrupt:
            return None
        return masks.paste_back(self.area.image, out.images[0], self.area.region, self.area.mask)
