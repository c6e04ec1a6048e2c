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
import torch
from PIL import Image

from engine import video
from engine.files import images, pnginfo
from engine.image.request import MIN_SIDE, RunControl
from engine.video.animate import color, depth, schedules, video_input, warp
from engine.video.animate.deforum_settings import to_settings
from engine.video.animate.request import (
    AnimateRequest,
    check_animation,
    frame_seed,
    request_from_dict,
    request_to_dict,
    series_for,
)
from engine.video.walk import RunPaths, encode_frames, frame_path, frame_paths, plan_run_paths, prepare_folder

PLAN_VERSION = 1
KIND = "animate"


@dataclass
class AnimateUpdate:
    """Progress: a frame written (with its image), or a denoising step of a diffused frame (no image)."""

    index: int  # frames written so far, counting from 1
    total: int
    image: Image.Image | None
    diffusion: int = 0  # diffused frames made so far (this one included while its steps run)
    diffusions: int = 0  # diffused frames in the whole run
    step: int = 0
    steps: int = 0  # this frame's denoising steps: num_inference_steps × (1 − strength) from a previous frame
    num_inference_steps: int = 0
    strength: float | None = None  # Deforum's, the share of the previous frame kept; None for a frame from noise

    @property
    def fraction(self) -> float:
        return self.index / max(self.total, 1)

    @property
    def text(self) -> str:
        text = f"frame {self.index}/{self.total}, diffusion {self.diffusion}/{self.diffusions}"
        if not self.steps:
            return text
        text += f", step {self.step} of {self.steps}"
        if self.strength is not None and self.num_inference_steps and self.steps != self.num_inference_steps:
            text += f" ({self.num_inference_steps} steps × (1 − strength {self.strength:g}))"
        return text


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


def diffusion_frames(req: AnimateRequest) -> list[int]:
    """The frames that are diffused: 0, N, 2N, ... (every frame in video mode)."""
    return list(range(0, req.num_frames, 1 if req.mode == "video" else req.cadence))


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
    _write_json(paths.plan, plan)
    _write_json(settings_path(paths), to_settings(req))
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
    maker = _FrameMaker(manager, req, paths, on_frame, control or RunControl(), limit=max(int(max_frames), 1))
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
    maker = _FrameMaker(manager, req, paths, on_frame, control)
    finished = _make_frames(maker, req, paths.plan.parent)
    return _finish(plan, paths, finished, notes, maker.calls)


def beside(folder: Path, name: str) -> Path:
    """A run's kept input (source video, init image): only ever a file in the plan's own folder."""
    return folder / Path(name).name


def _make_frames(maker: "_FrameMaker", req: AnimateRequest, folder: Path) -> bool:
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


class _Chain:
    """A diffused frame and its depth, warped frame by frame along the camera path."""

    def __init__(self, image: np.ndarray, depth_map: np.ndarray | None, maker: "_FrameMaker"):
        self.image, self.depth, self.maker = image, depth_map, maker

    def step(self, frame: int) -> None:
        s, req = self.maker.series, self.maker.req
        if req.mode == "3d":
            self.image, self.depth = warp.warp_3d(
                self.image, self.depth, (s["translation_x"][frame], s["translation_y"][frame],
                                         s["translation_z"][frame]),
                (s["rotation_3d_x"][frame], s["rotation_3d_y"][frame], s["rotation_3d_z"][frame]),
                s["fov"][frame], req.border)
        else:
            self.image = warp.warp_2d(self.image, s["zoom"][frame], s["angle"][frame], s["translation_x"][frame],
                                      s["translation_y"][frame], req.border)


class _FrameMaker:
    """Diffuses frames (prompt embeddings computed once per keyframe prompt) and writes them."""

    def __init__(self, manager, req: AnimateRequest, paths: RunPaths, on_frame, control: RunControl,
                 limit: int | None = None):
        self.manager, self.req, self.paths, self.on_frame, self.control = manager, req, paths, on_frame, control
        self.limit, self.new_frames = limit, 0  # frames to write in this call at most (None: all), and written
        self.series = series_for(req)
        self.calls = 0
        self.diffused = 0
        self.planned = len(diffusion_frames(req))
        self.written = len(frame_paths(paths, req.num_frames))
        self.reference: np.ndarray | None = None
        self._embeds: dict[str, torch.Tensor] = {}
        self._negative: torch.Tensor | None = None
        self._depth = depth.load_depth_model(req.depth_model) if req.mode == "3d" else None

    # prompts
    def embeds(self, frame: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The frame's prompt embedding, blended between keyframe prompts when asked; each prompt encoded once."""
        if self._negative is None:
            chunks = self.manager.prompt_chunks(*self.req.prompts.values(), self.req.negative_prompt)
            for prompt in dict.fromkeys(self.req.prompts.values()):
                self._embeds[prompt], self._negative = self.manager.encode(prompt, self.req.negative_prompt, chunks)
        mix = schedules.prompt_weights(self.req.prompts, frame, self.req.prompt_blend)
        embed = sum(self._embeds[p].float() * w for p, w in mix)
        return embed, self._negative

    # one diffused frame
    def diffuse(self, init: np.ndarray | None, frame: int) -> np.ndarray | None:
        """Frame `frame` made from `init` (None: from the prompt alone); None when Stop interrupted it."""
        req, s = self.req, self.series
        keep = float(s["strength"][frame])
        self.diffused += 1
        if init is not None and keep >= 1:  # strength 1: no denoising, the warped frame as it is
            return init
        seed = frame_seed(req, frame)
        if init is not None and self.reference is not None:
            init = color.match_colors(init, self.reference, req.color_coherence)
        if init is not None and s["noise"][frame] > 0:
            init = _add_noise(init, float(s["noise"][frame]), seed)
        embed, negative = self.embeds(frame)
        task = "txt2img" if init is None else "img2img"
        pipe = self.manager.pipeline(task, req.sampler, fast=req.fast)
        extra = {"height": req.height, "width": req.width} if init is None else {
            "image": Image.fromarray(init),  # at least one step, however few steps x (1 - strength) gives
            "strength": max(1 - keep, 1 / req.num_inference_steps)}

        def on_step(pipe, step, timestep, tensors):
            if self.control.stopped:
                pipe._interrupt = True
            if self.on_frame:
                self.on_frame(AnimateUpdate(self.written, req.num_frames, None, self.diffused, self.planned,
                                            step + 1, pipe.num_timesteps, req.num_inference_steps,
                                            None if init is None else round(float(keep), 4)))
            return tensors

        dtype, device = self.manager.dtype, self.manager.device
        out = pipe(prompt_embeds=embed.to(device, dtype), negative_prompt_embeds=negative.to(device, dtype),
                   num_inference_steps=req.num_inference_steps, guidance_scale=float(s["guidance"][frame]),
                   generator=torch.Generator("cpu").manual_seed(seed), callback_on_step_end=on_step, **extra)
        self.calls += 1
        if pipe.interrupt:
            return None
        image = np.asarray(out.images[0].convert("RGB"))
        if self.reference is not None:
            image = color.match_colors(image, self.reference, req.color_coherence)
        return image

    def depth_of(self, image: np.ndarray) -> np.ndarray | None:
        return self._depth.predict(image) if self._depth is not None else None

    # 2D and 3D
    def chain_frames(self, init: np.ndarray | None) -> bool:
        """Render every missing frame along the warp chains; False when stopped."""
        req, total = self.req, self.req.num_frames
        cadence = req.cadence
        keys = diffusion_frames(req)
        previous: _Chain | None = None  # C_{j-1}, in the view of the current key frame
        for j, a in enumerate(keys):
            b = min(a + cadence, total)
            if self._segment_done(a, b):
                previous = None
                self.diffused += 1
                continue
            if j > 0 and previous is None:  # resuming: rebuild the chain of the key before
                previous = self._chain(self._load_key(keys[j - 1]))
                for i in range(keys[j - 1] + 1, a + 1):
                    previous.step(i)
            if self.reference is None and a > 0:
                self.reference = self._load_key(0)
            if self.control.stopped or self._limited():
                return False
            image = self._load_key(a) if self._key_path(a).exists() else None
            if image is None:
                image = self.diffuse(init if j == 0 else previous.image, a)
                if image is None:
                    return False
                self._save(image, self._key_path(a))
                image = self._load_key(a)  # as saved, so a resumed or chunked run continues from the same pixels
            else:
                self.diffused += 1
            if a == 0:
                self.reference = image
            current = self._chain(image)
            for i in range(a, b):
                if i > a:
                    current.step(i)
                    if previous is not None and cadence > 1:
                        previous.step(i)
                weight = (i - a + 1) / cadence
                frame = current.image if previous is None or cadence == 1 else warp.blend(previous.image,
                                                                                          current.image, weight)
                self._write_frame(i, frame)
            if b < total:
                current.step(b)  # the view of the next key frame: its starting point
            previous = current
        return True

    def _segment_done(self, a: int, b: int) -> bool:
        next_ready = b >= self.req.num_frames or self._key_path(b).exists()
        return next_ready and self._key_path(a).exists() and all(frame_path(self.paths, i).exists()
                                                                  for i in range(a, b))

    def _chain(self, image: np.ndarray) -> _Chain:
        return _Chain(image, self.depth_of(image), self)

    def _key_path(self, frame: int) -> Path:
        return self.paths.frames / "diffused" / f"{frame:05d}.png"

    def _load_key(self, frame: int) -> np.ndarray:
        return np.asarray(Image.open(self._key_path(frame)).convert("RGB"))

    # video input
    def video_frames(self, source: Path) -> bool:
        """Every nth source frame through img2img; False when stopped."""
        req = self.req
        start = len(frame_paths(self.paths, req.num_frames))
        self.diffused = start
        if start > 0:
            self.reference = np.asarray(Image.open(frame_path(self.paths, 0)).convert("RGB"))
        for index, frame in video_input.read_frames(source, req.nth, (req.width, req.height), start):
            if index >= req.num_frames:
                break
            if self.control.stopped or self._limited():
                return False
            image = self.diffuse(frame, index)
            if image is None:
                return False
            self._write_frame(index, image)
            if index == 0:  # as saved, as a resumed run reads it
                self.reference = np.asarray(Image.open(frame_path(self.paths, 0)).convert("RGB"))
        return True

    def _limited(self) -> bool:
        return self.limit is not None and self.new_frames >= self.limit

    # files
    def _write_frame(self, index: int, frame: np.ndarray) -> None:
        path = frame_path(self.paths, index)
        if path.exists():
            return
        self._save(frame, path)
        self.written = index + 1
        self.new_frames += 1
        if self.on_frame:
            self.on_frame(AnimateUpdate(index + 1, self.req.num_frames, Image.fromarray(frame), self.diffused,
                                        self.planned))

    @staticmethod
    def _save(frame: np.ndarray, path: Path) -> None:
        """Write then rename, so a crash never leaves a half-written frame that resume would trust."""
        temp = path.with_suffix(".tmp")
        temp.write_bytes(pnginfo.png_bytes(Image.fromarray(frame), ""))
        temp.replace(path)


def _add_noise(image: np.ndarray, amount: float, seed: int) -> np.ndarray:
    """Deforum's noise: Gaussian noise of `amount` on pixels scaled to -1..1, repeatable per seed."""
    rng = np.random.default_rng(seed)
    pixels = image.astype(np.float32) / 127.5 - 1.0
    noised = pixels + rng.standard_normal(pixels.shape, dtype=np.float32) * amount
    return np.clip(np.rint((noised + 1.0) * 127.5), 0, 255).astype(np.uint8)


# 3. files
def _write_json(path: Path, data: dict) -> None:
    temp = path.with_suffix(".json.tmp")
    temp.write_text(json.dumps(data, indent=1))
    temp.replace(path)


def _parameters(plan: dict) -> dict:
    """What the video's metadata records: everything needed to make it again."""
    req = dict(plan["request"])
    for name in ("video", "init_image", "depth_model"):
        if req.get(name):
            req[name] = Path(req[name]).name
    return {"title": "Diffusion Studio animate", "kind": KIND, "model": plan.get("model"), **req}
