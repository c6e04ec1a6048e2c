"""Aging timelapse: the same person at rising ages, as keyframes, a labelled grid and a smooth captioned MP4.

Only the face and hair are regenerated, every age starts from the same noise (the same seed through a fresh
generator per frame), and transitions blend the prompt embeddings of neighbouring ages on that same noise.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image

from engine import video
from engine.faces.portrait import (
    FaceArea,
    FaceStep,
    Regenerator,
    check_keep_identity,
    find_face_area,
    identity_distances,
    identity_note,
)
from engine.files import pnginfo
from engine.image.parameters import decoder_field, replica_field, restoration_fields
from engine.image.request import ImageRequest, RunControl, check_request, pick_seed
from engine.pipeline.schedulers import DEFAULT_SAMPLER
from engine.text.limits import excerpt, listed, whole_number
from engine.text.presets import aging_preset
from engine.video.interpolation import lerp

MIN_AGE, MAX_AGE = 1, 100
MAX_AGES = MAX_AGE - MIN_AGE + 1  # every age once, rising
MAX_AGES_TEXT = 1000  # characters: 100 ages written out, with room to spare
MAX_TRANSITION_FRAMES = 24
HOLD_SECONDS = 0.5  # each age stays on screen this long
BLEND_FRAMES = 2  # crossfade frames between neighbouring rendered frames


@dataclass
class AgingRequest:
    """One timelapse; defaults come from presets/aging.json."""

    ages: list[int]  # two or more, increasing, each 1..100
    subject: str = "person"  # woman, man or person: how the prompt names them
    strength: float = 0.55  # how much of the face is redrawn
    num_inference_steps: int = 25
    guidance_scale: float = 5.0
    seed: int = -1  # -1 picks one; every age uses it
    sampler: str = DEFAULT_SAMPLER
    transition_frames: int = 2  # rendered in-between frames per pair of ages (blended prompts, same noise)
    fps: float = 8
    captions: bool = True  # write "Age N" on the video's frames
    face_index: int | None = None  # which detected face, counting from 0 (0 = largest); None = largest
    all_faces: bool = False  # regenerate every usable face, each in its own region; face_index is then unused
    padding: float = 0.5  # how far beyond the face the region reaches, in face sizes (hair, neck)
    whole_photo: bool = False  # regenerate the whole photo instead of the face region
    size: int | None = None  # the working resolution; None = the model's own (512; 128 for tiny)
    fast: bool = False  # reuse deep UNet features between steps: about 2x faster
    keep_identity: float = 0.0  # identity adapter scale, 0 (off) to 1; about 0.6 keeps the face (needs its weights)
    fast_decode: bool = False  # decode with TAESD (engine.pipeline.tiny_vae); outside the face the photo is kept
    restore_faces: str | None = None  # a restorer from engine.extras.restore.list_restorers; None = off
    visibility: float = 1.0  # how much of the restored face shows, 0 to 1


@dataclass
class AgingUpdate:
    """Progress: one more frame rendered (a keyframe age or an in-between frame)."""

    index: int
    total: int
    age: float
    image: Image.Image


@dataclass
class AgingResult:
    keyframes: list[tuple[int, Image.Image]]  # (age, full-size image), in order
    original: Image.Image
    video: Path | None
    grid: Image.Image | None
    folder: Path
    seed: int
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    identity: list[float] | None = None  # face distance of each age to the input (<= 0.6: same person); with all
    # faces, the largest over the faces; None when not measurable or when an age has no face where it should
    identity_by_face: list[list[float | None]] | None = None  # [region][age]; None entry: no face found there
    identity_note: str | None = None  # the distances in one sentence, "no face found in the result" where so

    def still_path(self, age: int) -> Path:
        """The watermarked PNG of one age, as written to the run's folder."""
        return self.folder / f"age_{age:03d}.png"

    @property
    def grid_path(self) -> Path | None:
        return self.folder / "grid.png" if self.grid is not None else None


def parse_ages(text: str) -> list[int]:
    """'10, 20, 30' or 'start-end/step' such as '10-80/10'; a range is checked from its ends before it is listed."""
    text = (text or "").strip()
    if len(text) > MAX_AGES_TEXT:
        raise ValueError(f"The ages are {len(text):,} characters long; give at most {MAX_AGES} ages, like "
                         "'10, 20, 30' or '10-80/10'.")
    if "-" in text and "/" in text and "," not in text:
        try:
            span, step = text.split("/")
            start, end = (int(v) for v in span.split("-"))
            step = int(step)
        except ValueError:
            raise ValueError(f"Write ages as '10, 20, 30' or as start-end/step like '10-80/10', not "
                             f"{excerpt(text)}.") from None
        if step <= 0:
            raise ValueError("The age step must be a positive whole number.")
        if not (MIN_AGE <= start <= MAX_AGE and MIN_AGE <= end <= MAX_AGE):
            raise ValueError(f"Every age must be from {MIN_AGE} to {MAX_AGE}; got the range {excerpt(text)}.")
        return list(range(start, end + 1, step))
    try:
        ages = [int(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"Write ages as whole numbers separated by commas, like '10, 20, 30', not "
                         f"{excerpt(text)}.") from None
    if len(ages) > MAX_AGES:
        raise ValueError(f"That is {len(ages):,} ages; give at most {MAX_AGES}, rising, from {MIN_AGE} to {MAX_AGE}.")
    return ages


def check_aging(req: AgingRequest) -> AgingRequest:
    """Reject impossible timelapses before any work."""
    ages = list(req.ages)
    if len(ages) < 2:
        raise ValueError("Give at least two ages for a timelapse, for example 20, 40, 60.")
    if len(ages) > MAX_AGES:
        raise ValueError(f"That is {len(ages):,} ages; give at most {MAX_AGES}, rising, from {MIN_AGE} to {MAX_AGE}.")
    if any(not MIN_AGE <= a <= MAX_AGE for a in ages):
        raise ValueError(f"Every age must be from {MIN_AGE} to {MAX_AGE}; got {listed(ages)}.")
    if any(b <= a for a, b in zip(ages, ages[1:])):
        raise ValueError(f"Ages must rise from first to last with no repeats; got {listed(ages)}.")
    transition_frames = whole_number(req.transition_frames, "Frames per transition", 0, MAX_TRANSITION_FRAMES)
    if not 0 < float(req.fps) <= video.MAX_FPS:
        raise ValueError(f"Frames per second must be above 0 and at most {video.MAX_FPS}; got {req.fps}.")
    aging_preset().prompt_for(ages[0], req.subject)  # unknown subject
    keep_identity = check_keep_identity(req.keep_identity)
    checked, _ = check_request(ImageRequest(num_inference_steps=req.num_inference_steps,
                                            guidance_scale=req.guidance_scale, seed=req.seed,
                                            sampler=req.sampler, strength=req.strength), task="img2img")
    return AgingRequest(**{**asdict(req), "ages": ages, "seed": pick_seed(checked.seed),
                           "num_inference_steps": checked.num_inference_steps,
                           "guidance_scale": checked.guidance_scale, "transition_frames": transition_frames,
                           "all_faces": bool(req.all_faces), "keep_identity": keep_identity})


def frame_plan(ages: list[int], transition_frames: int) -> list[tuple[int, float]]:
    """Every rendered frame as (index of the age it leaves, t); t == 0 is the age itself."""
    plan = []
    for i in range(len(ages)):
        plan.append((i, 0.0))
        if i < len(ages) - 1:
            plan += [(i, k / (transition_frames + 1)) for k in range(1, transition_frames + 1)]
    return plan


def timeline(rendered: list[tuple[float, Image.Image, bool]], hold: int, blends: int, captions: bool) -> list[Image.Image]:
    """Video frames: keyframes held `hold` frames, `blends` crossfade frames between neighbours, captioned."""
    frames: list[Image.Image] = []
    for n, (age, image, is_key) in enumerate(rendered):
        if n:
            previous_age, previous, _ = rendered[n - 1]
            for k, blend in enumerate(video.crossfade(previous, image, blends), 1):
                frames.append(_captioned(blend, previous_age + (age - previous_age) * k / (blends + 1), captions))
        frames += [_captioned(image, age, captions)] * (hold if is_key else 1)
    return frames


def _captioned(image: Image.Image, age: float, captions: bool) -> Image.Image:
    return video.caption(image, f"Age {round(age)}") if captions else image


def labelled_grid(keyframes: list[tuple[int, Image.Image]], thumb: int = 256) -> Image.Image:
    """All ages side by side with their labels, for sharing as one picture."""
    columns = min(4, len(keyframes))
    rows = math.ceil(len(keyframes) / columns)
    first = keyframes[0][1]
    scale = thumb / max(first.size)
    size = (max(1, round(first.width * scale)), max(1, round(first.height * scale)))
    grid = Image.new("RGB", (columns * size[0], rows * size[1]), (20, 20, 20))
    for n, (age, image) in enumerate(keyframes):
        grid.paste(video.caption(image.resize(size, Image.LANCZOS), f"Age {age}"),
                   ((n % columns) * size[0], (n // columns) * size[1]))
    return grid


def aging_timelapse(manager, req: AgingRequest, image, folder: Path,
                    on_frame: Callable[[AgingUpdate], None] | None = None,
                    control: RunControl | None = None,
                    on_step: Callable[[FaceStep], None] | None = None) -> AgingResult:
    """The plain model for the whole timelapse: another request's LoRAs never reach it (manager.lora_scope)."""
    with manager.lora_scope():
        return _aging_timelapse(manager, req, image, folder, on_frame, control, on_step)


def _aging_timelapse(manager, req: AgingRequest, image, folder: Path,
                     on_frame: Callable[[AgingUpdate], None] | None = None,
                     control: RunControl | None = None,
                     on_step: Callable[[FaceStep], None] | None = None) -> AgingResult:
    """Render every age (then the in-between frames), writing each as it is made, and assemble the outputs.

    on_frame gets an `AgingUpdate` per finished frame; on_step a `FaceStep` after every denoising step of
    every face, from the first step of the first frame.
    """
    # 1. check inputs and find the face(s)
    req = check_aging(req)
    area = find_face_area(image, req.face_index, req.padding, req.whole_photo, req.all_faces)
    folder = _writable(folder)
    # 2. render, keyframes first; 3. assemble what exists
    made = _render(manager, req, area, folder, None, on_frame, control or RunControl(), on_step, resume=False)
    return _assemble_folder(req, area, folder, made)


def render_order(req: AgingRequest) -> list[tuple[int, float]]:
    """The frames in the order they are rendered: keyframes first, so a Stop keeps whole ages; then in-betweens."""
    plan = frame_plan(req.ages, req.transition_frames)
    return [p for p in plan if p[1] == 0] + [p for p in plan if p[1] > 0]


def render_chunk(manager, req: AgingRequest, image, folder: Path, max_frames: int,
                 on_frame: Callable[[AgingUpdate], None] | None = None, control: RunControl | None = None,
                 on_step: Callable[[FaceStep], None] | None = None) -> tuple[int, int]:
    """Render up to `max_frames` of a timelapse's frames not yet in `folder`, and assemble nothing.

    `req` must be checked already (`check_aging`), so every chunk uses the same seed. Returns (frames in the
    folder, frames in the timelapse). Calling it until the two agree, then `finish`, gives the same stills, grid
    and video as one uninterrupted run: every frame depends only on its age and the seed.
    """
    area = find_face_area(image, req.face_index, req.padding, req.whole_photo, req.all_faces)
    folder = _writable(folder)
    _render(manager, req, area, folder, max(int(max_frames), 1), on_frame, control or RunControl(), on_step,
            resume=True)
    order = render_order(req)
    return sum((folder / _frame_name(req, i, t)).exists() for i, t in order), len(order)


def finish(req: AgingRequest, image, folder: Path) -> AgingResult:
    """Assemble the frames `render_chunk` wrote into the stills, grid and video, without the model."""
    area = find_face_area(image, req.face_index, req.padding, req.whole_photo, req.all_faces)
    return _assemble_folder(req, area, _writable(folder))


def _frame_name(req: AgingRequest, i: int, t: float) -> str:
    if t == 0:
        return f"age_{req.ages[i]:03d}.png"
    j = min(i + 1, len(req.ages) - 1)
    return f"between_{req.ages[i] + (req.ages[j] - req.ages[i]) * t:06.2f}.png"


def _render(manager, req: AgingRequest, area: FaceArea, folder: Path, limit: int | None, on_frame,
            control: RunControl, on_step, resume: bool) -> set[str]:
    """Render the frames (with `resume`, only those not yet in `folder`), at most `limit` of them, in
    `render_order`; return the names of the frames written."""
    order = render_order(req)
    todo = [(count, i, t) for count, (i, t) in enumerate(order, 1)
            if not (resume and (folder / _frame_name(req, i, t)).exists())]
    made: set[str] = set()
    if not todo:
        return made
    # encode each age's prompt once, all to the same length so they can be blended
    preset = aging_preset()
    prompts = [preset.prompt_for(age, req.subject) for age in req.ages]
    chunks = manager.prompt_chunks(*prompts, preset.negative_prompt)
    embeds = [manager.encode(p, preset.negative_prompt, chunks) for p in prompts]
    negative = embeds[0][1]
    regenerator = Regenerator(manager, area, req.sampler, req.num_inference_steps, req.guidance_scale,
                              req.strength, req.size or manager.defaults().width, req.fast,
                              req.keep_identity, fast_decode=req.fast_decode,
                              restore_faces=req.restore_faces, visibility=req.visibility)
    for count, i, t in todo[:limit]:
        if control.stopped:
            break
        j = min(i + 1, len(req.ages) - 1)
        prompt_embeds = lerp(t, embeds[i][0].float(), embeds[j][0].float()).to(manager.dtype)
        age = req.ages[i] + (req.ages[j] - req.ages[i]) * t
        label = f"age {age:.0f}" if t == 0 else f"age {age:.1f}"
        report = None
        if on_step:
            def report(face, step, total_steps, count=count, label=label):
                on_step(FaceStep(count, len(order), label, face, len(area.parts), step, total_steps,
                                 area.parts[face - 1].label if area.parts[face - 1].numbers else "whole photo",
                                 req.num_inference_steps, req.strength))
        result = regenerator.render(prompt_embeds, negative, req.seed, control, report)
        if result is None:
            break
        pnginfo.save_png(result, folder / _frame_name(req, i, t), _still_parameters(req, age, replica_field(manager)))
        made.add(_frame_name(req, i, t))
        if on_frame:
            on_frame(AgingUpdate(count, len(order), age, result))
    return made


def _assemble_folder(req: AgingRequest, area: FaceArea, folder: Path, only: set[str] | None = None) -> AgingResult:
    """The outputs from the frames in `folder` (all of the plan's, or `only` these), read back as saved, so one
    run and a run in chunks agree."""
    plan = frame_plan(req.ages, req.transition_frames)
    done = {}
    for i, t in plan:
        path = folder / _frame_name(req, i, t)
        if path.exists() and (only is None or path.name in only):
            with Image.open(path) as saved:
                done[(i, t)] = saved.convert("RGB")
    notes = [n for n in (area.note,) if n]
    return _assemble(req, area, plan, done, folder, notes, interrupted=len(done) < len(plan))


def _assemble(req: AgingRequest, area: FaceArea, plan, done: dict, folder: Path, notes: list[str],
              interrupted: bool) -> AgingResult:
    """Keyframes, plus each transition whose in-between frames were all made, into the video and grid."""
    keyframes = [(req.ages[i], done[(i, 0.0)]) for i in range(len(req.ages)) if (i, 0.0) in done]
    rendered = []
    for i, (age, image) in enumerate(keyframes):
        rendered.append((float(age), image, True))
        between = [(ii, t) for ii, t in plan if ii == i and t > 0]
        if i + 1 < len(keyframes) and all(b in done for b in between):
            rendered += [(age + (req.ages[i + 1] - age) * t, done[(i, t)], False) for _, t in between]
    if interrupted:
        notes.append(f"Stopped: {len(keyframes)} of {len(req.ages)} ages were made.")
    video_path, grid = None, None
    if keyframes:
        hold = max(1, round(req.fps * HOLD_SECONDS))
        frames = timeline(rendered, hold, BLEND_FRAMES, req.captions)
        try:
            video_path = video.write_mp4(frames, folder / "aging.mp4", req.fps, metadata=_metadata(req))
        except RuntimeError as exc:
            raise ValueError(f"The video could not be encoded ({exc}); the ages made are kept in {folder}.") from exc
        grid = labelled_grid(keyframes)
        pnginfo.save_png(grid, folder / "grid.png", _still_parameters(req, None))
        notes.append(video.describe_length(len(frames), req.fps) + ".")
    (folder / "aging.json").write_text(json.dumps(_metadata(req), indent=1))
    by_face = identity_distances(area, [image for _, image in keyframes]) if keyframes else None
    identity = None
    if by_face and all(d is not None for row in by_face for d in row):
        identity = [max(column) for column in zip(*by_face)]
    note = identity_note(area, [f"age {age}" for age, _ in keyframes], by_face)
    return AgingResult(keyframes, area.image, video_path, grid, folder, req.seed, notes, interrupted, identity,
                       by_face, note)


def _still_parameters(req: AgingRequest, age: float | None, replica: dict | None = None) -> str:
    """PNG info for a still: the age's prompt and the run's settings."""
    preset = aging_preset()
    prompt = preset.prompt_for(round(age), req.subject) if age is not None else "aging timelapse grid"
    settings = {"Steps": req.num_inference_steps, "Sampler": req.sampler, "CFG scale": f"{req.guidance_scale:g}",
                "Seed": req.seed, "Denoising strength": f"{req.strength:g}", "Ages": " ".join(map(str, req.ages)),
                "Faces": "all" if req.all_faces else None,
                "Keep identity": f"{req.keep_identity:g}" if req.keep_identity else None,
                **decoder_field(req), **restoration_fields(req), **(replica or {}), "Version": "Diffusion Studio"}
    return pnginfo.format_parameters(prompt, preset.negative_prompt, settings)


def _metadata(req: AgingRequest) -> dict:
    preset = aging_preset()
    return {"title": "Diffusion Studio aging timelapse", **asdict(req),
            "prompts": [preset.prompt_for(a, req.subject) for a in req.ages],
            "negative_prompt": preset.negative_prompt}


def _writable(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"The output folder {folder} can't be written ({exc.strerror}).") from exc
    return folder
