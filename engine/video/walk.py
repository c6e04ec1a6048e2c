"""Latent walks and dream videos: keyframe noises slerped, prompt embeddings lerped, frames saved as they are made.

Every frame depends only on its position along the path, so a stopped or crashed run resumes from its plan
file and the frames already on disk.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from engine.image.request import RunControl
from engine.image.steps import decode_choice
from engine.video import interpolation
from engine.video.run_folder import (
    RunPaths,
    encode_frames,
    frame_path,
    frame_paths,
    plan_run_paths,
    prepare_folder,
    save_frame,
    write_json,
)
from engine.video.walk_request import FrameUpdate, WalkRequest, WalkResult, check_prompts, check_walk, notes_for

PLAN_VERSION = 1


# 1. running a walk


def latent_walk(manager, req: WalkRequest, paths: RunPaths, on_frame: Callable[[FrameUpdate], None] | None = None,
                control: RunControl | None = None) -> WalkResult:
    """Render a walk from scratch: check it, write its plan, then render and encode."""
    plan_path = start(manager, req, paths)
    _, plan = read_plan(plan_path)
    return _render(manager, plan, paths, on_frame, control or RunControl(), notes_for(WalkRequest(**plan["request"])))


def start(manager, req: WalkRequest, paths: RunPaths) -> Path:
    """Check a walk and write its plan, rendering nothing: the frames follow in one run or in several chunks."""
    req = check_walk(req)
    check_prompts(manager, req)
    if req.fast_decode:
        manager.taesd()  # fails now, saying where to get TAESD, before any frame
    prepare_folder(paths.frames)
    plan = {"version": PLAN_VERSION, "request": asdict(req), "model": manager.model_label,
            "model_name": manager.model_name,
            "frames_dir": os.path.relpath(paths.frames, paths.plan.parent),
            "video": paths.video.name, "positions": None}
    write_json(paths.plan, plan)
    return paths.plan


def read_plan(plan_path: Path) -> tuple[Path, dict]:
    """A stopped run's plan (a .json file, or the folder holding one), or a sentence saying why it can't be used."""
    plan_path = Path(plan_path)
    if plan_path.is_dir():
        found = sorted(plan_path.glob("*.json"))
        if not found:
            raise ValueError(f"{plan_path} holds no walk plan (.json) to resume.")
        plan_path = found[0]
    if not plan_path.is_file():
        raise ValueError(f"{plan_path} was not found; pass the .json plan written beside the video.")
    try:
        plan = json.loads(plan_path.read_text())
        WalkRequest(**plan["request"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{plan_path} is not a walk plan Diffusion Studio wrote; start a new run instead.") from None
    return plan_path, plan


def plan_model(plan: dict) -> str | None:
    """The model a run was made with, as a name the app can load (plans from before it was recorded: the label)."""
    return plan.get("model_name") or plan.get("model")


def resume(manager, plan_path: Path, on_frame: Callable[[FrameUpdate], None] | None = None,
           control: RunControl | None = None) -> WalkResult:
    """Continue a stopped or crashed walk from its plan file, keeping the frames already made.

    The plan's model, size, sampler and every other setting are used; a run can only continue on the model
    it was started with, or its new frames would not match the old ones.
    """
    plan_path, plan, paths = _open_run(manager, plan_path)
    return _render(manager, plan, paths, on_frame, control or RunControl(), notes_for(WalkRequest(**plan["request"])))


def render_chunk(manager, plan_path: Path, max_frames: int, on_frame: Callable[[FrameUpdate], None] | None = None,
                 control: RunControl | None = None) -> tuple[int, int]:
    """Render up to `max_frames` more of a planned run's missing images (whole batches; smooth mode's probe pass
    first) and encode nothing.

    Returns (images made, images in all) as `progress_units` counts them. Calling it until the two agree, then
    `finish`, makes the same frames and video as one uninterrupted run: each frame depends only on its position
    and its batch.
    """
    plan_path, plan, paths = _open_run(manager, plan_path)
    _render_missing(manager, plan, paths, on_frame, control or RunControl(), limit=max(int(max_frames), 1))
    return progress_units(plan_path)


def finish(plan_path: Path) -> WalkResult:
    """Encode the frames a planned run has on disk into its video, without the model (after `render_chunk`)."""
    plan_path, plan = read_plan(plan_path)
    req = WalkRequest(**plan["request"])
    paths = plan_run_paths(plan_path, plan)
    return _finish(plan, paths, len(frame_paths(paths, req.num_frames)) < req.num_frames, notes_for(req))


def _open_run(manager, plan_path: Path) -> tuple[Path, dict, RunPaths]:
    """A stopped or planned run's plan and paths, checked against the model now loaded."""
    plan_path, plan = read_plan(plan_path)
    made_with = plan_model(plan)
    if made_with != manager.model_name and not (plan.get("model_name") is None and made_with == manager.model_label):
        raise ValueError(f"This run was made with the model {made_with}; switch to it to resume the run "
                         f"(the model now is {manager.model_name}).")
    paths = plan_run_paths(plan_path, plan)
    prepare_folder(paths.frames)
    return plan_path, plan, paths


def _render(manager, plan: dict, paths: RunPaths, on_frame, control: RunControl, notes: list[str]) -> WalkResult:
    """The prompts' LoRAs stay active for the whole walk (engine.pipeline.manager.lora_scope)."""
    req = WalkRequest(**plan["request"])
    with manager.lora_scope(*req.prompts, req.negative_prompt):
        return _render_plan(manager, plan, paths, on_frame, control, notes)


def _render_plan(manager, plan: dict, paths: RunPaths, on_frame, control: RunControl, notes: list[str]) -> WalkResult:
    """Render every frame not yet on disk, batch by batch, then encode whatever exists."""
    finished = _render_missing(manager, plan, paths, on_frame, control)
    return _finish(plan, paths, not finished, notes)


def _render_missing(manager, plan: dict, paths: RunPaths, on_frame, control: RunControl,
                    limit: int | None = None) -> bool:
    """Render the frames not yet on disk (at most `limit` images, smooth mode's probes included, in whole
    batches); False when stopped or limited."""
    req = WalkRequest(**plan["request"])
    if plan["positions"] is not None and len(frame_paths(paths, req.num_frames)) == req.num_frames:
        return True  # nothing to render: the weights are not touched
    keys = _Keyframes(manager, req)
    budget = [limit]  # images this call may still render (None: no limit), shared by the probes and the frames
    if plan["positions"] is None:
        positions = [s + t for s, t in interpolation.keyframe_positions(len(req.prompts), req.num_frames, req.loop)]
        if req.smooth:
            positions = _smooth_positions(keys, req, positions, paths, on_frame, control, budget)
            if positions is None:
                return False
        plan["positions"] = [float(p) for p in positions]
        write_json(paths.plan, plan)
        shutil.rmtree(_probe_folder(paths), ignore_errors=True)  # measured; the probes are not part of the video
    return _render_frames(keys, req, plan["positions"], paths, on_frame, control, budget[0])


def progress_units(plan_path: Path) -> tuple[int, int]:
    """(images made, images in all) of a planned run: its frames, plus smooth mode's probe pass."""
    plan_path, plan = read_plan(plan_path)
    req = WalkRequest(**plan["request"])
    paths = plan_run_paths(plan_path, plan)
    made, total = len(frame_paths(paths, req.num_frames)), req.num_frames
    if req.smooth:
        probes = req.num_frames + int(req.loop)
        total += probes
        made += probes if plan["positions"] is not None else sum(
            _probe_path(paths, i).exists() for i in range(probes))
    return made, total


def _finish(plan: dict, paths: RunPaths, interrupted: bool, notes: list[str]) -> WalkResult:
    """Encode whatever frames exist into the video, with the note on how to resume a stopped run."""
    req = WalkRequest(**plan["request"])
    frames = frame_paths(paths, req.num_frames)
    if interrupted:
        notes.append(f"Stopped after {len(frames)} of {req.num_frames} frames; resume from {paths.plan}.")
    parameters = _parameters(plan)
    video_path = encode_frames(frames, paths, req.fps, req.quality, parameters, req.gif)
    return WalkResult(video_path, frames, paths.plan, parameters, interrupted, notes)


def _render_frames(keys: "_Keyframes", req: WalkRequest, positions: list[float], paths: RunPaths, on_frame,
                   control: RunControl, limit: int | None = None) -> bool:
    """Render the missing frames in aligned batches; False when stopped, or when `limit` frames were rendered
    and more are missing."""
    total, rendered = len(positions), 0
    for start in range(0, total, req.batch_size):
        indices = list(range(start, min(total, start + req.batch_size)))
        if all(frame_path(paths, i).exists() for i in indices):
            continue
        if control.stopped or (limit is not None and rendered >= limit):
            return False
        rendered += len(indices)
        images = keys.render([positions[i] for i in indices], control, seed_offset=start)
        if images is None:
            return False
        for i, image in zip(indices, images):
            save_frame(image, frame_path(paths, i))
            if on_frame:
                on_frame(FrameUpdate(i + 1, total, image))
    return True


def _smooth_positions(keys: "_Keyframes", req: WalkRequest, positions: list[float], paths: RunPaths, on_frame,
                      control: RunControl, budget: list) -> list[float] | None:
    """Render the even walk once, measure the change between neighbours, and re-space for even change.

    The probe frames are kept on disk until the spacing is measured, so a stopped run, or one made in several
    calls (`budget[0]` images each), picks up where it was. None until every probe exists.
    """
    probe_positions = list(positions) + ([float(len(req.prompts))] if req.loop else [])
    _probe_folder(paths).mkdir(parents=True, exist_ok=True)
    for start in range(0, len(probe_positions), req.batch_size):
        batch = probe_positions[start:start + req.batch_size]
        if all(_probe_path(paths, i).exists() for i in range(start, start + len(batch))):
            continue
        if budget[0] is not None and budget[0] <= 0:
            return None
        images = keys.render(batch, control, seed_offset=start)
        if images is None:
            return None
        if budget[0] is not None:
            budget[0] -= len(images)
        for offset, image in enumerate(images):
            _save_probe(image, _probe_path(paths, start + offset))
            if on_frame:
                on_frame(FrameUpdate(start + offset + 1, len(probe_positions), image, phase="probe"))
    probes = [np.asarray(Image.open(_probe_path(paths, i)).convert("RGB")) for i in range(len(probe_positions))]
    distances = [interpolation.frame_distance(a, b) for a, b in zip(probes, probes[1:])]
    count = req.num_frames + (1 if req.loop else 0)
    spaced = interpolation.respace(np.asarray(probe_positions), np.asarray(distances), count)
    return [float(p) for p in spaced[:req.num_frames]]


def _probe_folder(paths: RunPaths) -> Path:
    return paths.frames / "probes"


def _probe_path(paths: RunPaths, index: int) -> Path:
    return _probe_folder(paths) / f"{index:05d}.png"


def _save_probe(image: Image.Image, path: Path) -> None:
    """A plain lossless PNG, read back as the very pixels rendered; removed once the spacing is measured."""
    temp = path.with_suffix(".tmp")
    image.save(temp, format="PNG")
    temp.replace(path)


class _Keyframes:
    """The keyframes' noises and prompt embeddings, computed once and blended per frame."""

    def __init__(self, manager, req: WalkRequest):
        self.manager, self.req = manager, req
        base = manager.base()
        chunks = manager.prompt_chunks(*req.prompts, req.negative_prompt)
        unique = {p: manager.encode(p, req.negative_prompt, chunks) for p in dict.fromkeys(req.prompts)}
        self.embeds = [unique[p][0] for p in req.prompts]
        self.negative = unique[req.prompts[0]][1]
        factor = base.vae_scale_factor
        shape = (1, base.unet.config.in_channels, req.height // factor, req.width // factor)
        self.noises = [torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s)) for s in req.seeds]
        self.device, self.dtype = manager.device, manager.dtype

    def blend(self, position: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise (slerp) and prompt embedding (lerp) at a position along the path."""
        count = len(self.req.prompts)
        segment, t = interpolation.position_to_segment(position, count, self.req.loop)
        nxt = (segment + 1) % count
        noise = interpolation.slerp(t, self.noises[segment], self.noises[nxt])
        embed = interpolation.lerp(t, self.embeds[segment].float(), self.embeds[nxt].float())
        return noise, embed

    def render(self, positions: list[float], control: RunControl, seed_offset: int) -> list[Image.Image] | None:
        """One pipeline call for a batch of positions; None if Stop interrupted it."""
        noises, embeds = zip(*(self.blend(p) for p in positions))
        pipe = self.manager.pipeline("txt2img", self.req.sampler, fast=self.req.fast, **decode_choice(self.req))

        def stop_check(pipe, step, timestep, tensors):
            if control.stopped:
                pipe._interrupt = True
            return tensors

        out = pipe(prompt_embeds=torch.cat(embeds).to(self.device, self.dtype),
                   negative_prompt_embeds=self.negative.expand(len(positions), -1, -1).to(self.device, self.dtype),
                   latents=torch.cat(noises).to(self.device, self.dtype),
                   num_inference_steps=self.req.num_inference_steps, guidance_scale=self.req.guidance_scale,
                   height=self.req.height, width=self.req.width,
                   generator=torch.Generator("cpu").manual_seed(self.req.seeds[0] + seed_offset),
                   callback_on_step_end=stop_check)
        return None if pipe.interrupt else list(out.images)


# 2. files


def _parameters(plan: dict) -> dict:
    """What the video's metadata and its JSON record: everything needed to make it again."""
    req = plan["request"]
    keep = ("kind", "prompts", "seeds", "negative_prompt", "num_frames", "fps", "num_inference_steps",
            "guidance_scale", "width", "height", "sampler", "loop", "smooth", "batch_size")
    return {"title": f"Diffusion Studio {req['kind']}", "model": plan.get("model"), **{k: req[k] for k in keep},
            "fast": req.get("fast", False), "fast_decode": req.get("fast_decode", False)}
