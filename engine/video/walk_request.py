"""What a walk or dream asks for, read from what the user typed and checked before any frame is made."""
from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from engine import video
from engine.image.request import MAX_SEED, ImageRequest, check_request
from engine.pipeline.schedulers import DEFAULT_SAMPLER, is_stochastic
from engine.text.limits import excerpt, whole_number

MAX_FRAMES = 600  # 50 s at 12 fps; longer runs belong in several resumable pieces
MAX_BATCH_SIZE = 8
MAX_KEYFRAMES = 100  # prompts of a walk, noises of a dream


@dataclass
class WalkRequest:
    """A walk through prompts and seeds; defaults suit a short clip."""

    prompts: list[str]  # two or more keyframe prompts (a dream repeats one prompt)
    seeds: list[int | None] = field(default_factory=list)  # one per prompt; None or missing = random
    negative_prompt: str = ""
    num_frames: int = 24  # frames in the whole video, keyframes included
    fps: float = 12  # playback speed: the video lasts num_frames / fps seconds
    num_inference_steps: int = 20
    guidance_scale: float = 7.0
    width: int = 512
    height: int = 512
    sampler: str = DEFAULT_SAMPLER
    loop: bool = False  # walk back to the first keyframe so the video repeats seamlessly
    smooth: bool = False  # re-space frames so the change between neighbours is even (renders twice)
    batch_size: int = 1  # frames per pipeline call
    quality: int = 18  # x264 CRF: lower is better and bigger
    gif: bool = False  # also write a GIF beside the MP4
    kind: str = "walk"  # "walk" or "dream", recorded in the plan and the video's metadata
    fast: bool = False  # reuse deep UNet features between steps (engine.backends.fastpath): ~2x faster, slightly different
    fast_decode: bool = False  # decode frames with TAESD (engine.pipeline.tiny_vae): ~16x cheaper, less fine detail


@dataclass
class FrameUpdate:
    """Progress of a walk: one finished frame."""

    index: int
    total: int
    image: Image.Image
    phase: str = "frames"  # "probe" while smooth mode measures the path, then "frames"


@dataclass
class WalkResult:
    """The video (None if no frame was made), its frames, and the plan to resume from."""

    video: Path | None
    frames: list[Path]
    plan: Path
    parameters: dict
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)


def parse_prompts(text: str) -> list[str]:
    """One prompt per line; a blank line in the middle is a mistake worth pointing at."""
    lines = [line.strip() for line in (text or "").strip().splitlines()]
    if len(lines) > MAX_KEYFRAMES:
        raise ValueError(f"There are {len(lines):,} prompt lines; a walk takes at most {MAX_KEYFRAMES}.")
    for number, line in enumerate(lines, 1):
        if not line:
            raise ValueError(f"Prompt line {number} is empty; write a prompt on it or remove it.")
    return lines


def parse_seeds(text: str) -> list[int | None]:
    """Seeds by line or comma; 'random', -1 or a blank entry each mean a random seed."""
    entries = [e.strip() for e in (text or "").replace(",", "\n").splitlines()]
    while entries and not entries[-1]:
        entries.pop()
    if len(entries) > MAX_KEYFRAMES:
        raise ValueError(f"There are {len(entries):,} seeds; a walk takes at most {MAX_KEYFRAMES}, one per prompt.")
    seeds: list[int | None] = []
    for number, entry in enumerate(entries, 1):
        if entry.lower() in ("", "random", "-1"):
            seeds.append(None)
            continue
        try:
            seed = int(entry)
        except ValueError:
            raise ValueError(f"Seed {number} ({excerpt(entry)}) is not a whole number; use a number or "
                             "'random'.") from None
        if not 0 <= seed <= MAX_SEED:
            raise ValueError(f"Seed {number} must be from 0 to {MAX_SEED}, or 'random'; got {excerpt(seed)}.")
        seeds.append(seed)
    return seeds


def check_walk(req: WalkRequest) -> WalkRequest:
    """Reject what can't run before any frame is made."""
    minimum = 1 if req.kind == "dream" else 2
    if len(req.prompts) < minimum:
        raise ValueError("A latent walk needs at least 2 prompts, one per line.")
    if len(req.prompts) > MAX_KEYFRAMES:
        raise ValueError(f"There are {len(req.prompts):,} prompts; a walk takes at most {MAX_KEYFRAMES}.")
    for number, prompt in enumerate(req.prompts, 1):
        if not (prompt or "").strip():
            raise ValueError(f"Prompt {number} is empty; write a prompt or remove it.")
    if len(req.seeds) > len(req.prompts):
        raise ValueError(f"There are {len(req.seeds)} seeds for {len(req.prompts)} prompts; give one seed per "
                         "prompt at most.")
    num_frames = whole_number(req.num_frames, "Frames", 2, MAX_FRAMES)
    if not isinstance(req.fps, (int, float)) or not 0 < req.fps <= video.MAX_FPS:
        raise ValueError(f"Frames per second must be above 0 and at most {video.MAX_FPS}; got {excerpt(req.fps)}.")
    batch_size = whole_number(req.batch_size, "Batch size", 1, MAX_BATCH_SIZE)
    image_req, _ = check_request(ImageRequest(num_inference_steps=req.num_inference_steps,
                                              guidance_scale=req.guidance_scale, width=req.width,
                                              height=req.height, sampler=req.sampler))
    seeds = [s if s is not None and s >= 0 else secrets.randbelow(MAX_SEED + 1) for s in req.seeds]
    seeds += [secrets.randbelow(MAX_SEED + 1) for _ in range(len(req.prompts) - len(seeds))]
    return WalkRequest(**{**asdict(req), "seeds": seeds, "num_frames": num_frames,
                          "batch_size": batch_size, "width": image_req.width,
                          "height": image_req.height, "num_inference_steps": image_req.num_inference_steps,
                          "guidance_scale": image_req.guidance_scale})


def check_prompts(manager, req: WalkRequest) -> None:
    """Every keyframe prompt and the negative prompt within the manager's cap (--max-prompt-tokens)."""
    if req.kind == "dream":
        manager.check_prompt(req.prompts[0], "The prompt")
    else:
        for number, prompt in enumerate(req.prompts, 1):
            manager.check_prompt(prompt, f"Prompt {number}")
    manager.check_prompt(req.negative_prompt, "The negative prompt")


def dream_request(prompt: str, num_keyframes: int, seed: int | None = None, **settings) -> WalkRequest:
    """A dream: one prompt over several random keyframe noises, seeds counting up from `seed`."""
    num_keyframes = whole_number(num_keyframes, "Random keyframe noises", 2, MAX_KEYFRAMES)
    if not (prompt or "").strip():
        raise ValueError("Write a prompt for the dream.")
    first = secrets.randbelow(MAX_SEED + 1) if seed is None or seed < 0 else int(seed)
    seeds = [(first + i) % (MAX_SEED + 1) for i in range(num_keyframes)]
    return WalkRequest(prompts=[prompt.strip()] * num_keyframes, seeds=seeds, kind="dream", **settings)


def notes_for(req: WalkRequest) -> list[str]:
    """Warnings worth showing before a long run."""
    notes = [video.describe_length(req.num_frames, req.fps) + "."]
    if is_stochastic(req.sampler):
        notes.append(f"{req.sampler} adds fresh noise every step, so neighbouring frames flicker; "
                     "a deterministic sampler such as DPM++ 2M Karras or DDIM gives smoother video.")
    return notes
