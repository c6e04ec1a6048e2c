"""Making an animation: every frame from the one before, saved as it is made; Stop keeps them, Resume continues.

2D and 3D, with cadence N: diffusion runs on frames 0, N, 2N, ... Each diffused frame D_j starts a chain of
warps, C_j(i) = D_j moved by the camera of frames a+1 .. i. The next diffused frame starts from C_j(a + N): it is
matched to frame 0's colours, noised, and denoised with img2img at 1 - strength. The frames between are
(1 - w) * C_{j-1}(i) + w * C_j(i), w = (i - a + 1) / N: both chains are warped into the same view and the newer
one fades in, as in Deforum. With cadence 1 every frame is a diffused one.

Video input: every nth source frame goes through img2img alone (no chain), with the same schedules.

Every diffused frame is also kept in `<frames>/diffused/`, so a resumed run rebuilds the chains exactly and
makes the same frames an uninterrupted run would have made.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from engine import video
from engine.files import images
from engine.image.request import MIN_SIDE, RunControl
from engine.video.animate import depth, video_input
from engine.video.animate.deforum_settings import to_settings
from engine.video.animate.frames import AnimateUpdate, FrameMaker, diffusion_frames
from engine.video.animate.request import (
    AnimateRequest,
    check_animation,
    request_from_dict,
    request_to_dict,
)
from engine.video.run_folder import (
    RunPaths,
    encode_frames,
    frame_paths,
    plan_run_paths,
    prepare_folder,
    write_json,
)

PLAN_VERSION = 1
KIND = "animate"


@dataclass
class AnimateResult:
    """The video (None if no frame was made), its frames, the plan to resume from and the Deforum settings."""

    video: Path | None
    frames: list[Path]
    plan: Path
    settings: Path
    parameters: dict
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    diffusions: int = 0  # pipeline calls this run made


def settings_path(paths: RunPaths) -> Path:
    return paths.video.with_name(f"{paths.video.stem}-settings.json")


# 1. starting and resuming
def prepare(req: AnimateRequest, weights_dir: Path | None = None) -> tuple[AnimateRequest, list[str]]:
    """Check a request fully, the source video and the depth model included, before any folder is made."""
    notes: list[str] = []
    if str(req.mode).strip().lower() in ("video", "video input"):
        if not req.video:
            raise ValueError("Video mode needs a source video; upload one or choose 2D.")
        info = video_input.source_info(req.video)
        nth = req.nth if isinstance(req.nth, int) and req.nth >= 1 else 1
        count = -(-info.frames // nth)
        from engine.video.animate.request import MAX_FRAMES

        if count > MAX_FRAMES:
            raise ValueError(f"The video has {info.frames} frames: every {nth} of them makes {count} frames, over the "
                             f"{MAX_FRAMES} limit; set nth to at least {-(-info.frames // MAX_FRAMES)} or cut the clip.")
        side = max(int(req.width), int(req.height))
        width, height = images.scale_to_long_side(info.width, info.height, side)
        if min(width, height) < MIN_SIDE:  # a wide clip at a small size: keep its short side workable
            width, height = images.scale_to_long_side(info.width, info.height, side * MIN_SIDE / min(width, height))
        req = replace(req, num_frames=count, fps=round(min(info.fps / nth, video.MAX_FPS), 3), width=width,
                      height=height)
        notes.append(f"The source has {info.frames} frames at {info.fps:g} fps; every {nth} of them gives "
                     f"{count} frames at {req.fps:g} fps" + (", with its sound." if info.has_audio else "."))
    req, more = check_animation(req)
    notes += more
    if req.mode == "3d":
        found = depth.find_depth_model(req.depth_model, weights_dir or depth.WEIGHTS_DIR)
        if found is None:
            raise ValueError(depth.MISSING)
        req = replace(req, depth_model=found)
    if req.init_image and req.mode != "video":
        images.load_image(req.init_image)  # a sentence now if it is not a picture
    return req, notes


def animate(manager, req: AnimateRequest, paths: RunPaths, on_frame: Callable[[AnimateUpdate], None] | None = None,
            control: RunControl | None = None) -> AnimateResult:
    """Make an animation from scratch: check it, write its plan and settings, then render and encode."""
    plan = _plan(manager, req, paths)
    return _render(manager, plan, paths, on_frame, control or RunControl(), list(plan["notes"]))


def _plan(manager, req: AnimateRequest, paths: RunPaths) -> dict:
    """Check a request, keep its inputs beside the run and write its plan and Deforum settings."""
    # 1. check inputs
    req, notes = prepare(req, getattr(manager, "weights_dir", None))
    check_prompts(manager, req)
    if req.fast_decode:
        manager.taesd()  # fails now, saying where to get TAESD, before any frame
    prepare_folder(paths.frames / "diffused")  # the frames' folder and its diffused keyframes
    # 2. keep the inputs beside the run, so Resume never depends on an upload's temp file
    if req.mode == "video":
        source = paths.video.with_name(f"{paths.video.stem}-source{Path(req.video).suffix.lower() or '.mp4'}")
        if Path(req.video).resolve() != source.resolve():
            shutil.copyfile(req.video, source)
        req = replace(req, video=source.name)
    elif req.init_image:
        init = paths.video.with_name(f"{paths.video.stem}-init.png")
        images.load_image(req.init_image).save(init)
        req = replace(req, init_image=init.name)
    plan = {"version": PLAN_VERSION, "kind": KIND, "request": request_to_dict(req), "model": manager.model_label,
            "model_name": manager.model_name, "frames_dir": os.path.relpath(paths.frames, paths.plan.parent),
            "video": paths.video.name, "settings": settings_path(paths).name, "notes": notes}
    write_json(paths.plan, plan)
    write_json(settings_path(paths), to_settings(req))
    return plan


def check_prompts(manager, req: AnimateRequest) -> None:
    """Every keyframed prompt and the negative prompt within the manager's cap (--max-prompt-tokens)."""
    for frame, prompt in req.prompts.items():
        manager.check_prompt(prompt, f"The prompt at frame {frame}")
    manager.check_prompt(req.negative_prompt, "The negative prompt")


def start(manager, req: AnimateRequest, paths: RunPaths) -> Path:
    """Check an animation and write its plan, rendering nothing: the frames follow in one run or in chunks."""
    _plan(manager, req, paths)
    return paths.plan


def render_chunk(manager, plan_path: Path, max_frames: int, on_frame: Callable[[AnimateUpdate], None] | None = None,
                 control: RunControl | None = None) -> tuple[int, int]:
    """Render up to about `max_frames` more frames of a planned animation (whole cadence segments), encoding nothing.

    Returns (frames on disk, frames in the animation). Calling it until the two agree, then `finish`, makes the
    same frames and video as one uninterrupted run, as Resume does.
    """
    plan_path, plan, paths = _open_run(manager, plan_path)
    req = request_from_dict(plan["request"])
    maker = FrameMaker(manager, req, paths, on_frame, control or RunControl(), limit=max(int(max_frames), 1))
    _make_frames(maker, req, paths.plan.parent)
    return len(frame_paths(paths, req.num_frames)), req.num_frames


def finish(plan_path: Path) -> AnimateResult:
    """Encode the frames a planned animation has on disk into its video, without the model."""
    plan_path, plan = read_plan(plan_path)
    paths = plan_run_paths(plan_path, plan)
    req = request_from_dict(plan["request"])
    made = len(frame_paths(paths, req.num_frames))
    diffused = made if req.mode == "video" else sum(
        (paths.frames / "diffused" / f"{k:05d}.png").exists() for k in diffusion_frames(req))
    return _finish(plan, paths, made == req.num_frames, list(plan.get("notes", [])), diffused)


def read_plan(plan_path: Path) -> tuple[Path, dict]:
    """A stopped animation's plan (a .json file or the folder holding one), or a sentence saying why not."""
    plan_path = Path(plan_path)
    if plan_path.is_dir():
        found = sorted(p for p in plan_path.glob("*.json") if not p.name.endswith("-settings.json"))
        if not found:
            raise ValueError(f"{plan_path} holds no animation plan (.json) to resume.")
        plan_path = found[0]
    if not plan_path.is_file():
        raise ValueError(f"{plan_path} was not found; pass the .json plan written beside the video.")
    try:
        plan = json.loads(plan_path.read_text())
        if plan.get("kind") != KIND:
            raise ValueError
        request_from_dict(plan["request"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise ValueError(f"{plan_path} is not an animation plan Diffusion Studio wrote; start a new run "
                         "instead.") from None
    return plan_path, plan


def resume(manager, plan_path: Path, on_frame: Callable[[AnimateUpdate], None] | None = None,
           control: RunControl | None = None) -> AnimateResult:
    """Continue a stopped or crashed animation from its plan, keeping every frame already made.

    It runs on the model the run was started with, with every setting of the plan.
    """
    plan_path, plan, paths = _open_run(manager, plan_path)
    return _render(manager, plan, paths, on_frame, control or RunControl(), list(plan.get("notes", [])))


def _open_run(manager, plan_path: Path) -> tuple[Path, dict, RunPaths]:
    """A stopped or planned animation's plan and paths, checked against the model now loaded."""
    plan_path, plan = read_plan(plan_path)
    made_with = plan.get("model_name") or plan.get("model")
    if made_with != manager.model_name:
        raise ValueError(f"This animation was made with the model {made_with}; switch to it to resume the run "
                         f"(the model now is {manager.model_name}).")
    paths = plan_run_paths(plan_path, plan)
    prepare_folder(paths.frames / "diffused")  # the frames' folder and its diffused keyframes
    return plan_path, plan, paths


# 2. rendering
def _render(manager, plan: dict, paths: RunPaths, on_frame, control: RunControl, notes: list[str]) -> AnimateResult:
    """The prompts' LoRAs stay active for the whole animation (engine.pipeline.manager.lora_scope)."""
    req = request_from_dict(plan["request"])
    with manager.lora_scope(*req.prompts.values(), req.negative_prompt):
        return _render_plan(manager, plan, paths, on_frame, control, notes)


def _render_plan(manager, plan: dict, paths: RunPaths, on_frame, control: RunControl, notes: list[str]) -> AnimateResult:
    req = request_from_dict(plan["request"])
    maker = FrameMaker(manager, req, paths, on_frame, control)
    finished = _make_frames(maker, req, paths.plan.parent)
    return _finish(plan, paths, finished, notes, maker.calls)


def beside(folder: Path, name: str) -> Path:
    """A run's kept input (source video, init image): only ever a file in the plan's own folder."""
    return folder / Path(name).name


def _make_frames(maker: "FrameMaker", req: AnimateRequest, folder: Path) -> bool:
    """Every missing frame (up to the maker's limit); False when stopped or limited."""
    if req.mode == "video":
        return maker.video_frames(beside(folder, req.video))
    init = np.asarray(images.load_image(beside(folder, req.init_image)).convert("RGB").resize(
        (req.width, req.height), Image.LANCZOS)) if req.init_image else None
    return maker.chain_frames(init)


def _finish(plan: dict, paths: RunPaths, finished: bool, notes: list[str], diffusions: int) -> AnimateResult:
    """Encode the frames on disk (video input: with the source's sound once every frame is made)."""
    req = request_from_dict(plan["request"])
    folder = paths.plan.parent
    frames = frame_paths(paths, req.num_frames)
    interrupted = not finished
    if interrupted:
        notes.append(f"Stopped after {len(frames)} of {req.num_frames} frames; resume from {paths.plan}.")
    parameters = _parameters(plan)

    def add_sound(video_path: Path) -> None:
        """Video input keeps the source's sound, once every frame is made."""
        if req.mode != "video" or interrupted:
            return
        source = beside(folder, req.video)
        if video_input.source_info(source).has_audio:
            if not video_input.add_sound(video_path, source, len(frames) / req.fps):
                notes.append("The source's sound could not be copied; the video is silent.")

    video_path = encode_frames(frames, paths, req.fps, req.quality, parameters, req.gif, add_sound)
    return AnimateResult(video_path, frames, paths.plan, settings_path(paths), parameters, interrupted, notes,
                         diffusions)


def _parameters(plan: dict) -> dict:
    """What the video's metadata records: everything needed to make it again."""
    req = dict(plan["request"])
    for name in ("video", "init_image", "depth_model"):
        if req.get(name):
            req[name] = Path(req[name]).name
    return {"title": "Diffusion Studio animate", "kind": KIND, "model": plan.get("model"), **req}
