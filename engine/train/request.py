"""What a training run asks for, checked once at the engine's edge, with the anchors' defaults for a person."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

PERSON_CLASSES = ("person", "man", "woman", "boy", "girl", "child", "baby", "people", "guy", "lady")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
PATH_CHARACTERS = ("/", "\\", ":", "..", "\0")
MIN_STEPS, MAX_STEPS = 400, 1500  # the default total for the anchors' "about 100 steps per photo"
STEPS_PER_PHOTO = 100
MIN_RESOLUTION, MAX_RESOLUTION = 32, 1024


@dataclass
class TrainRequest:
    """One DreamBooth LoRA training; every field has the person recipe's default (kohya, OneTrainer, diffusers)."""

    images: str  # a folder or a .zip of 3 to 50 photos, with optional same-name .txt captions
    name: str  # the trigger word and the LoRA's file name
    class_word: str = "person"  # person, man, woman, dog, object, or free text
    steps: int | None = None  # total optimiser steps; None: 100 per photo, within 400-1500
    rank: int = 16  # LoRA rank (kohya's network_dim)
    alpha: float = 8.0  # LoRA alpha: the update is scaled by alpha / rank
    resolution: int = 512  # side of the square training crops, in pixels
    unet_lr: float = 1e-4
    text_encoder_lr: float = 5e-5
    text_encoder: bool = False  # also train the text encoder (lora_te_ layers)
    warmup_steps: int | None = None  # None: 5% of the steps, at most 50
    min_snr_gamma: float = 5.0  # Min-SNR loss weighting (0 turns it off)
    batch_size: int = 1
    flip: bool = False  # also train on the mirrored photos
    face_weighted: bool = False  # count the face region more in the loss (people only)
    face_weight: float = 3.0  # how much more a face pixel counts than the rest
    prior_preservation: bool = False  # class images made by the loaded model keep the class word general
    class_images: int = 50  # class images for prior preservation (made once, cached)
    prior_loss_weight: float = 1.0
    seed: int = 0
    checkpoint_every: int = 100  # steps between checkpoints (Stop always saves one)
    keep_checkpoints: int = 3  # the last K checkpoints are kept
    sample_every: int = 100  # steps between samples (0: only at the end)
    sample_steps: int = 20  # denoising steps of each sample image
    overwrite: bool = False  # replace an existing LoRA of that name
    captions: dict[str, str] = field(default_factory=dict)  # photo name -> caption, beside the .txt files

    def to_json(self) -> dict:
        return asdict(self)


def is_person(class_word: str) -> bool:
    """Person classes get face crops (and may use the face-weighted loss)."""
    return class_word.strip().lower() in PERSON_CLASSES


def default_steps(photos: int) -> int:
    """About 100 steps per photo, kept within 400-1500 (the anchors' range for a person)."""
    return min(MAX_STEPS, max(MIN_STEPS, STEPS_PER_PHOTO * photos))


def default_warmup(steps: int) -> int:
    """A short warm-up: 5% of the steps, at most 50."""
    return min(50, steps // 20)


def check_name(name: str, lora_dir: Path, overwrite: bool = False) -> str:
    """The name is the file name and trigger word: no path characters, and no clash unless `overwrite`."""
    name = (name or "").strip()
    if not name:
        raise ValueError("Give the subject a name: it becomes the trigger word and the LoRA's file name.")
    if any(c in name for c in PATH_CHARACTERS):
        raise ValueError(f"The name {name!r} has path characters; use letters, digits, - and _ only.")
    if not NAME.match(name):
        raise ValueError(f"The name {name!r} can't be a trigger word and file name; use up to 64 letters, digits, "
                         "- and _, starting with a letter or digit.")
    if not overwrite and lora_dir.is_dir():
        taken = {p.stem.lower() for p in lora_dir.iterdir() if p.suffix.lower() in (".safetensors", ".pt", ".ckpt")}
        if name.lower() in taken:
            raise ValueError(f"A LoRA named {name} already exists in {lora_dir}; choose another name or overwrite it.")
    return name


def check_request(req: TrainRequest) -> TrainRequest:
    """Refuse settings that can't train, each with a sentence; photos are checked by engine.train.photos."""
    if not (req.class_word or "").strip():
        raise ValueError("Give a class word (person, man, woman, dog, object, ...): it says what the subject is.")
    whole = {"Rank": (req.rank, 1, 256), "Resolution": (req.resolution, MIN_RESOLUTION, MAX_RESOLUTION),
             "Batch size": (req.batch_size, 1, 16), "Checkpoint every": (req.checkpoint_every, 1, 100_000),
             "Checkpoints kept": (req.keep_checkpoints, 1, 100), "Sample every": (req.sample_every, 0, 100_000),
             "Sample steps": (req.sample_steps, 1, 150), "Class images": (req.class_images, 1, 1000)}
    if req.steps is not None:
        whole["Steps"] = (req.steps, 1, 100_000)
    for label, (value, low, high) in whole.items():
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{label} must be a whole number from {low} to {high}; got {value!r}.")
    if req.resolution % 8:
        raise ValueError(f"Resolution must be a multiple of 8 (the VAE's scale); got {req.resolution}.")
    for label, value in (("Alpha", req.alpha), ("UNet learning rate", req.unet_lr),
                         ("Text encoder learning rate", req.text_encoder_lr), ("Face weight", req.face_weight),
                         ("Prior loss weight", req.prior_loss_weight), ("Min-SNR gamma", req.min_snr_gamma + 1)):
        if not isinstance(value, (int, float)) or not 0 < value < 1e6:
            raise ValueError(f"{label} must be a positive number; got {value!r}.")
    if req.face_weighted and not is_person(req.class_word):
        raise ValueError(f"The face-weighted loss needs a person class ({', '.join(PERSON_CLASSES[:3])}, ...); "
                         f"{req.class_word!r} photos have no face to weight.")
    return req
