"""Making an animation's frames: diffused frames from the one before (prompt embeddings computed once per keyframe
prompt), the warp chains between them, and Deforum's noise; each frame written as it is made."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.image.request import RunControl
from engine.image.steps import decode_choice
from engine.video.animate import color, depth, schedules, video_input, warp
from engine.video.animate.request import AnimateRequest, frame_seed, series_for
from engine.video.run_folder import RunPaths, frame_path, frame_paths, save_frame


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


def diffusion_frames(req: AnimateRequest) -> list[int]:
    """The frames that are diffused: 0, N, 2N, ... (every frame in video mode)."""
    return list(range(0, req.num_frames, 1 if req.mode == "video" else req.cadence))


class Chain:
    """A diffused frame and its depth, warped frame by frame along the camera path."""

    def __init__(self, image: np.ndarray, depth_map: np.ndarray | None, maker: "FrameMaker"):
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


class FrameMaker:
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
            init = add_noise(init, float(s["noise"][frame]), seed)
        embed, negative = self.embeds(frame)
        task = "txt2img" if init is None else "img2img"
        pipe = self.manager.pipeline(task, req.sampler, fast=req.fast, **decode_choice(req))
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
        previous: Chain | None = None  # C_{j-1}, in the view of the current key frame
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
                save_frame(Image.fromarray(image), self._key_path(a))
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

    def _chain(self, image: np.ndarray) -> Chain:
        return Chain(image, self.depth_of(image), self)

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
        save_frame(Image.fromarray(frame), path)
        self.written = index + 1
        self.new_frames += 1
        if self.on_frame:
            self.on_frame(AnimateUpdate(index + 1, self.req.num_frames, Image.fromarray(frame), self.diffused,
                                        self.planned))


def add_noise(image: np.ndarray, amount: float, seed: int) -> np.ndarray:
    """Deforum's noise: Gaussian noise of `amount` on pixels scaled to -1..1, repeatable per seed."""
    rng = np.random.default_rng(seed)
    pixels = image.astype(np.float32) / 127.5 - 1.0
    noised = pixels + rng.standard_normal(pixels.shape, dtype=np.float32) * amount
    return np.clip(np.rint((noised + 1.0) * 127.5), 0, 255).astype(np.uint8)
