"""What an animation is made from: the request, its defaults (Deforum's) and the checks at the engine's edge."""
from __future__ import annotations

import math
import secrets
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np

from engine import video
from engine.image.request import MAX_SEED, ImageRequest, check_request
from engine.pipeline.schedulers import DEFAULT_SAMPLER
from engine.text.limits import excerpt, listed
from engine.video.animate import color, schedules, warp

MAX_FRAMES = 1000  # about 80 s at 12 fps; longer animations belong in several resumable pieces
MAX_CADENCE = 50
MAX_PROMPT_BLEND = 100
MODES = ("2d", "3d", "video")
SEED_BEHAVIORS = ("iter", "fixed", "random")
MOTION_2D = ("zoom", "angle", "translation_x", "translation_y")
MOTION_3D = ("translation_x", "translation_y", "translation_z", "rotation_3d_x", "rotation_3d_y", "rotation_3d_z",
             "fov")
SCHEDULES = ("zoom", "angle", "translation_x", "translation_y", "translation_z", "rotation_3d_x", "rotation_3d_y",
             "rotation_3d_z", "fov", "strength", "guidance", "noise")


@dataclass
class AnimateRequest:
    """A Deforum-style animation; every schedule is Deforum's `frame:(value)` text, defaults are Deforum's."""

    prompts: dict[int, str] = field(default_factory=lambda: {0: "a forest at dawn, photo"})  # keyframe -> prompt
    negative_prompt: str = ""
    mode: str = "2d"  # "2d": zoom/angle/translate; "3d": a camera over the depth; "video": img2img of a video's frames
    num_frames: int = 24  # frames in the video (video mode: taken from the source, every nth frame)
    fps: float = 12  # playback speed (video mode: the source's fps / nth)
    width: int = 512
    height: int = 512
    num_inference_steps: int = 20  # full steps; a frame runs steps x (1 - strength) of them, at least one
    sampler: str = DEFAULT_SAMPLER
    seed: int = -1  # -1 = random; the seed used is saved in the plan and the settings
    seed_behavior: str = "iter"  # iter: seed + frame; fixed: the same seed every frame; random: a new one each frame
    zoom: str = "0:(1.0025+0.002*sin(1.25*3.14*t/30))"  # 2D: scale per frame, 1 = none, above 1 moves in
    angle: str = "0:(0)"  # 2D: degrees per frame, positive turns anticlockwise
    translation_x: str = "0:(0)"  # 2D: pixels per frame; 3D: camera sideways (Deforum units)
    translation_y: str = "0:(0)"  # 2D: pixels per frame; 3D: camera up/down
    translation_z: str = "0:(1.75)"  # 3D: camera forward per frame
    rotation_3d_x: str = "0:(0)"  # 3D: degrees per frame about each axis
    rotation_3d_y: str = "0:(0)"
    rotation_3d_z: str = "0:(0)"
    fov: str = "0:(70)"  # 3D: the camera's field of view in degrees
    strength: str = "0:(0.65)"  # share of the previous frame kept: 1 = no denoising; diffusers' strength is 1 - this
    guidance: str = "0:(7)"  # classifier-free guidance scale per frame
    noise: str = "0:(0.065)"  # Gaussian noise added to the warped frame before denoising (on -1..1 pixels)
    cadence: int = 2  # diffuse every Nth frame; the frames between are warped from their neighbours and blended
    color_coherence: str = "lab"  # none, rgb, hsv or lab: match each frame's colours to frame 0's
    border: str = "replicate"  # replicate, wrap or reflect: what fills the edges a move uncovers
    prompt_blend: int = 0  # frames over which the prompt embeddings blend before each prompt change
    init_image: str | None = None  # start from this picture (2D/3D); None makes frame 0 from the prompt
    video: str | None = None  # video mode: the source video
    nth: int = 1  # video mode: use every nth source frame
    depth_model: str = ""  # 3D: a depth model folder or hub id; empty finds one (engine.video.animate.depth)
    gif: bool = False  # also write a GIF beside the MP4
    quality: int = 18  # x264 CRF
    fast: bool = False  # reuse deep UNet features between steps (engine.backends.fastpath)
    fast_decode: bool = False  # decode frames with TAESD (engine.pipeline.tiny_vae): ~16x cheaper, less fine detail


def request_from_dict(data: dict) -> AnimateRequest:
    """A request from JSON (plan files, the API): frame keys back to ints, unknown keys refused."""
    known = {f.name for f in fields(AnimateRequest)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"Unknown animation settings: {', '.join(unknown)}.")
    data = dict(data)
    if isinstance(data.get("prompts"), dict):
        try:
            data["prompts"] = {int(k): str(v) for k, v in data["prompts"].items()}
        except ValueError:
            raise ValueError("Prompt keyframes must be frame numbers.") from None
    return AnimateRequest(**data)


def request_to_dict(req: AnimateRequest) -> dict:
    data = asdict(req)
    data["prompts"] = {str(k): v for k, v in sorted(req.prompts.items())}
    return data


def _whole(value, name: str, low: int, high: int) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number; got {excerpt(value)}.") from None
    if isinstance(value, bool) or not math.isfinite(number) or number != int(number) or not low <= number <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}; got {excerpt(value)}.")
    return int(number)


def check_animation(req: AnimateRequest, num_frames: int | None = None) -> tuple[AnimateRequest, list[str]]:
    """Reject what can't run before any frame is made; returns the request with its seed chosen, and notes.

    `num_frames` overrides the request's count (video mode, where the source decides it).
    """
    notes: list[str] = []
    mode = str(req.mode or "").strip().lower().replace("video input", "video")
    if mode not in MODES:
        raise ValueError(f"Mode must be 2D, 3D or video; got {excerpt(req.mode)}.")
    prompts = schedules.parse_prompts(req.prompts) if isinstance(req.prompts, str) else dict(req.prompts or {})
    if not prompts or not all(str(p).strip() for p in prompts.values()):
        raise ValueError("Write at least one prompt, as 'frame: prompt', e.g. 0: a forest at dawn.")
    if len(prompts) > schedules.MAX_KEYFRAMES:
        raise ValueError(f"There are {len(prompts):,} prompt keyframes; give at most {schedules.MAX_KEYFRAMES:,}.")
    if any(not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= schedules.MAX_KEYFRAME
           for k in prompts):
        raise ValueError(f"Prompt keyframes must be frame numbers from 0 to {schedules.MAX_KEYFRAME:,}.")
    if 0 not in prompts:
        prompts[0] = prompts[min(prompts)]
    frames = _whole(req.num_frames if num_frames is None else num_frames, "Frames", 1, MAX_FRAMES)
    if not isinstance(req.fps, (int, float)) or isinstance(req.fps, bool) or not 0 < req.fps <= video.MAX_FPS:
        raise ValueError(f"Frames per second must be above 0 and at most {video.MAX_FPS}; got {excerpt(req.fps)}.")
    cadence = _whole(req.cadence, "Cadence", 1, MAX_CADENCE)
    blend = _whole(req.prompt_blend, "Prompt blend", 0, MAX_PROMPT_BLEND)
    nth = _whole(req.nth, "Every nth frame", 1, 1000)
    seed_behavior = str(req.seed_behavior or "").strip().lower()
    if seed_behavior not in SEED_BEHAVIORS:
        raise ValueError(f"Seed behaviour must be iter, fixed or random; got {excerpt(req.seed_behavior)}.")
    image_req, size_notes = check_request(ImageRequest(num_inference_steps=req.num_inference_steps, seed=req.seed,
                                                       width=req.width, height=req.height, sampler=req.sampler),
                                          "img2img")
    notes += size_notes
    series = {name: schedules.parse_schedule(getattr(req, name), name.replace("_", " ")) for name in SCHEDULES}
    used = {"strength", "guidance", "noise", *{"2d": MOTION_2D, "3d": MOTION_3D, "video": ()}[mode]}
    for name in sorted(used):
        notes += series[name].notes(frames)
    values = {name: s.series(frames) for name, s in series.items()}
    if mode == "2d" and np.any(values["zoom"] <= 0):
        bad = int(np.argmax(values["zoom"] <= 0))
        raise ValueError(f"Zoom must stay above 0 (1 keeps the size); the zoom schedule gives {values['zoom'][bad]:g} "
                         f"at frame {bad}.")
    if mode == "3d" and np.any((values["fov"] <= 0) | (values["fov"] >= 180)):
        bad = int(np.argmax((values["fov"] <= 0) | (values["fov"] >= 180)))
        raise ValueError(f"Field of view must stay between 0 and 180 degrees; the fov schedule gives "
                         f"{values['fov'][bad]:g} at frame {bad}.")
    for name, low, high in (("strength", 0.0, 1.0), ("noise", 0.0, 10.0), ("guidance", 1.0, 30.0)):
        outside = (values[name] < low) | (values[name] > high)
        if np.any(outside):
            bad = int(np.argmax(outside))
            raise ValueError(f"The {name} schedule gives {values[name][bad]:g} at frame {bad}; keep it from {low:g} "
                             f"to {high:g}.")
    late = [k for k in prompts if k >= frames]
    if late:
        notes.append(f"The prompt at frame {listed(sorted(late))} comes after the last frame "
                     f"({frames - 1}), so it never shows.")
    if mode == "video" and not req.video:
        raise ValueError("Video mode needs a source video; upload one or choose 2D.")
    if mode == "video" and cadence != 1:
        notes.append("Video mode diffuses every frame it takes; cadence is not used there (use nth to skip frames).")
        cadence = 1
    seed = image_req.seed if image_req.seed >= 0 else secrets.randbelow(MAX_SEED + 1)
    checked = replace(req, mode=mode, prompts=dict(sorted(prompts.items())), num_frames=frames, cadence=cadence,
                      prompt_blend=blend, nth=nth, seed=seed, seed_behavior=seed_behavior,
                      color_coherence=color.check_mode(req.color_coherence), border=warp.check_border(req.border),
                      width=image_req.width, height=image_req.height,
                      num_inference_steps=image_req.num_inference_steps, fps=float(req.fps),
                      depth_model=req.depth_model or "")
    return checked, notes


def frame_seed(req: AnimateRequest, frame: int) -> int:
    """The seed a frame is made with: iter counts up, fixed repeats, random is drawn from the run's seed (repeatable)."""
    if req.seed_behavior == "fixed":
        return req.seed
    if req.seed_behavior == "random":
        return int(np.random.default_rng([req.seed, frame]).integers(0, MAX_SEED + 1))
    return (req.seed + frame) % (MAX_SEED + 1)


def series_for(req: AnimateRequest) -> dict[str, np.ndarray]:
    """Every schedule evaluated at every frame of a checked request."""
    return {name: schedules.schedule_series(getattr(req, name), name.replace("_", " "), req.num_frames)
            for name in SCHEDULES}


def describe_length(req_frames: int, fps: float) -> str:
    return video.describe_length(int(req_frames), float(fps))
