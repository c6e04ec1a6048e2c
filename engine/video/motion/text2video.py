"""Text to video: diffusers' AnimateDiffPipeline over the loaded SD 1.5 model and a motion adapter.

All frames are denoised together, step by step, so Stop ends the denoising early and the clip is decoded from
where the steps got to: it is saved, noisier than a finished one, rather than thrown away.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from engine import video
from engine.backends import fastpath
from engine.backends import openvino as ov_backend
from engine.files import pnginfo
from engine.files.outputs import output_root
from engine.image.request import ImageRequest, RunControl, check_request, pick_seed
from engine.image.steps import step_preview
from engine.pipeline.schedulers import check_sampler, make_scheduler, sampler_names
from engine.pipeline.tiny_vae import DECODER_FIELD, DECODER_VALUE
from engine.video.animate.schedules import parse_prompts
from engine.video.motion import adapter as motion_adapter
from engine.video.motion import decoding, lightning
from engine.video.motion import resume as saved_steps
from engine.video.motion.unet import motion_unet
from engine.video.run_folder import RunPaths

KIND = "text2video"
MIN_FRAMES, MAX_FRAMES = 8, 32
DEFAULT_SAMPLER = "DDIM"
# diffusers' recommended scheduler settings for AnimateDiff: the motion modules were trained on a linear schedule
ANIMATEDIFF_SCHEDULE = {"clip_sample": False, "beta_schedule": "linear", "timestep_spacing": "linspace",
                        "steps_offset": 1}
INCOMPATIBLE = {"LCM": "LCM needs an LCM motion adapter or LoRA"}
FREE_NOISE_CONTEXT, FREE_NOISE_STRIDE = 16, 4  # FreeNoise: frames per window (AnimateDiff's training length), step
STOP_NOTE = ("Stop ends the denoising early; the clip made so far is decoded and kept (noisier than a finished one), "
             "and Resume continues it from that step.")


def motion_samplers() -> list[str]:
    """The samplers that work with AnimateDiff (every one but LCM)."""
    return [name for name in sampler_names() if name not in INCOMPATIBLE]


@dataclass
class Text2VideoRequest:
    """One clip. Sizes and frames default to what finishes in minutes on a CPU (see `defaults_for`)."""

    prompt: str = ""
    negative_prompt: str = ""
    frame_prompts: str = ""  # optional 'frame: prompt' lines; given, the clip moves between them (FreeNoise)
    num_frames: int = 8  # MIN_FRAMES to MAX_FRAMES; the clip lasts num_frames / fps seconds
    fps: float = 8
    num_inference_steps: int = 20
    guidance_scale: float = 7.5  # diffusers' AnimateDiff default
    seed: int = -1  # -1 picks a random seed, reported back
    width: int = 256
    height: int = 256
    sampler: str = DEFAULT_SAMPLER  # DDIM with AnimateDiff's settings, as diffusers recommends
    free_noise: bool = False  # sliding 16-frame windows: steadier clips past 16 frames; on for frame prompts
    gif: bool = False  # also write a GIF beside the MP4
    motion_adapter: str | None = None  # a weights/ path or hub id; None: the first local one, else the hub default
    fast_decode: bool = False  # decode frames with TAESD (engine.pipeline.tiny_vae): ~16x cheaper, less fine detail


@dataclass
class Text2VideoUpdate:
    """Progress: denoising step `step` of `steps` over all frames, with a preview: the middle frame by TAESD when
    present, else frame 0's rough latent approximation."""

    step: int
    steps: int
    preview: Image.Image | None = None

    @property
    def fraction(self) -> float:
        return self.step / max(self.steps, 1)


@dataclass
class Text2VideoResult:
    """The MP4 (None when stopped before a step), the GIF if asked, the frames, the settings file and notes."""

    video: Path | None
    gif: Path | None
    frames: list[Path]
    settings: Path
    parameters: dict
    seed: int
    steps_done: int
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    seconds_per_step: float | None = None


def defaults_for(device: str, model_defaults) -> Text2VideoRequest:
    """What the form and the CLI start from: on a CPU 256 px, 8 frames and 10 steps (a step of 8 frames took
    25-55 s on 2 cores, so minutes, not a quarter of an hour), on a GPU 512 px, 16 frames and 20 steps; never above
    the model's own size (128 px for the tiny model)."""
    cpu = device == "cpu"
    side = min(model_defaults.width, 256 if cpu else 512)
    return Text2VideoRequest(width=side, height=side, num_frames=8 if cpu else 16,
                             num_inference_steps=10 if cpu else 20)


def lightning_of(adapter_name: str | None) -> lightning.Lightning | None:
    """The Lightning settings of the adapter named in a request (by its file or folder name), or None."""
    return lightning.recognise(adapter_name)


def defaults_with_adapter(start: Text2VideoRequest, adapter_name: str | None,
                          taesd: bool = False) -> Text2VideoRequest:
    """The form's or CLI's starting request for an adapter: a Lightning one brings its steps, sampler and CFG, and
    Fast decode when TAESD is present (`taesd`), since its few steps cost less than the VAE's decode."""
    fast = lightning_of(adapter_name)
    req = lightning.with_defaults(replace(start, motion_adapter=adapter_name or None), fast)
    return replace(req, fast_decode=True) if fast and taesd else req


# 1. checking inputs
def check_text2video(req: Text2VideoRequest) -> tuple[Text2VideoRequest, dict[int, str] | None, list[str]]:
    """Reject what can't run, round what can be rounded; returns the request, the frame prompts (or None), notes."""
    image_req, notes = check_request(ImageRequest(
        prompt=req.prompt, negative_prompt=req.negative_prompt, num_inference_steps=req.num_inference_steps,
        guidance_scale=req.guidance_scale, seed=req.seed, width=req.width, height=req.height, sampler=req.sampler))
    if req.sampler in INCOMPATIBLE:
        raise ValueError(f"{INCOMPATIBLE[req.sampler]}; choose DDIM (recommended) or another sampler.")
    check_sampler(req.sampler)
    try:
        frames = float(req.num_frames)
    except (TypeError, ValueError):
        frames = math.nan
    if not (math.isfinite(frames) and frames == int(frames) and MIN_FRAMES <= frames <= MAX_FRAMES):
        raise ValueError(f"Frames must be a whole number from {MIN_FRAMES} to {MAX_FRAMES}; got {req.num_frames}.")
    video.describe_length(int(frames), req.fps)  # says what is wrong with fps, if anything
    prompt = " ".join((req.prompt or "").split())
    keyed = None
    if (req.frame_prompts or "").strip():
        text = req.frame_prompts
        if prompt and 0 not in _explicit_keys(text):
            text = f"0: {prompt}\n{text}"  # the prompt opens the clip unless a frame-0 prompt is given
        keyed = parse_prompts(text)
        late = [k for k in keyed if k >= frames]
        if late:
            raise ValueError(f"The frame prompt at frame {late[0]} is past the clip's last frame ({int(frames) - 1}); "
                             "add frames or move the prompt earlier.")
        prompt = prompt or keyed[0]
    if not prompt:
        raise ValueError("Write a prompt for the clip.")
    free_noise = bool(req.free_noise)
    if keyed is not None and len(keyed) > 1 and not free_noise:
        free_noise = True
        notes.append("FreeNoise is on: frame prompts need it.")
    if keyed is not None and len(keyed) == 1:
        keyed = None  # one prompt for the whole clip
    req = replace(req, prompt=prompt, negative_prompt=req.negative_prompt or "", num_frames=int(frames),
                  fps=float(req.fps), num_inference_steps=image_req.num_inference_steps,
                  guidance_scale=image_req.guidance_scale, seed=image_req.seed, width=image_req.width,
                  height=image_req.height, free_noise=free_noise, gif=bool(req.gif),
                  motion_adapter=(req.motion_adapter or None), fast_decode=bool(req.fast_decode))
    return req, keyed, notes


def _explicit_keys(text: str) -> set[int]:
    import re

    return {int(m.group(1)) for m in re.finditer(r"^\s*(\d{1,9})\s*:", text or "", re.MULTILINE)}


# 2. timing: the estimate shown before a run
_step_costs: dict[str, float] = {}  # seconds a step per frame-pixel-pass, measured, by model/device/dtype
# From bench/text2video.py: full-size SD 1.5 with v1-5-2's architecture, bf16, 2 busy CPU cores: 55 s a step for
# 8 frames at 256 px with CFG. Used until this machine has measured its own.
BENCH_CPU_COST = 5.2e-5


def _timing_key(manager) -> str:
    return f"{manager.model_name}|{manager.device}|{manager.dtype}"


def _timing_file() -> Path:
    return output_root() / KIND / "step-times.json"


def _work(req: Text2VideoRequest) -> float:
    return req.num_frames * req.width * req.height * (2 if req.guidance_scale > 1 else 1)


def record_step_time(manager, req: Text2VideoRequest, seconds_per_step: float) -> None:
    """Remember how long a step took, so the next estimate starts from this machine's own pace."""
    key = _timing_key(manager)
    _step_costs[key] = seconds_per_step / _work(req)
    try:
        path = _timing_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        known = json.loads(path.read_text()) if path.is_file() else {}
        known[key] = _step_costs[key]
        path.write_text(json.dumps(known, indent=1))
    except (OSError, ValueError):
        pass  # the estimate is a convenience; never fail a run over it


def estimate_seconds(manager, req: Text2VideoRequest) -> tuple[float, str] | None:
    """(seconds, where the figure comes from) for the denoising of `req`, or None when nothing is known yet."""
    key = _timing_key(manager)
    if key not in _step_costs:
        try:
            known = json.loads(_timing_file().read_text())
            if key in known:
                _step_costs[key] = float(known[key])
        except (OSError, ValueError, TypeError):
            pass
    if key in _step_costs:
        cost, source = _step_costs[key], "this machine's last run"
    elif manager.device == "cpu" and manager.model_name != "tiny":
        cost, source = BENCH_CPU_COST, "the benchmark on 2 CPU cores"
    else:
        return None
    return cost * _work(req) * req.num_inference_steps, source


def describe_estimate(manager, req: Text2VideoRequest) -> str:
    """One line for the form: the clip's length and about how long it takes to make."""
    try:
        req, _, _ = check_text2video(replace(req, prompt=req.prompt or "x"))
    except ValueError as exc:
        return f"⚠️ {exc}"
    length = video.describe_length(req.num_frames, req.fps)
    found = estimate_seconds(manager, req)
    if found is None:
        return f"Video length: {length}. Time: measured during the first run (the progress bar shows it)."
    seconds, source = found
    took = f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
    return f"Video length: {length}. Estimated time: about {took} (from {source})."


# 3. running
def text_to_video(manager, req: Text2VideoRequest, paths: RunPaths,
                  on_step: Callable[[Text2VideoUpdate], None] | None = None,
                  control: RunControl | None = None) -> Text2VideoResult:
    """Make a clip with AnimateDiff on the manager's model; frames, MP4 (and GIF) go to `paths`.

    The motion UNet shares the model's 2D weights and the adapter's temporal weights (engine.video.motion.unet);
    the adapter is loaded once per model (engine.video.motion.adapter). Raises ValueError with the fix when no
    adapter can be had. LoRA tags are refused (the motion UNet is built over the plain weights); the whole clip
    runs on the plain model, so another request's LoRAs never reach it. `req.fast_decode` decodes the frames with
    TAESD (engine.video.motion.decoding); ValueError saying where to get it when it is absent.
    """
    with manager.lora_scope(req.prompt, req.negative_prompt, req.frame_prompts or "", supported="Text to video"):
        return _text_to_video(manager, req, paths, on_step, control)


# settings a resumed clip must keep (fps and the GIF only change the encoding), with the form's names for them
KEPT_ON_RESUME = {"prompt": "Prompt", "negative_prompt": "Negative prompt", "frame_prompts": "Frame prompts",
                  "num_frames": "Frames", "num_inference_steps": "Steps", "guidance_scale": "Guidance scale",
                  "width": "Width", "height": "Height", "sampler": "Sampler", "free_noise": "FreeNoise",
                  "motion_adapter": "Motion adapter", "seed": "Seed"}


def read_run(run: Path) -> tuple[Path, dict]:
    """A Text to video run's plan (its .json, or the folder holding it), or a sentence saying why not."""
    run = Path(run)
    if run.is_dir():
        found = sorted(p for p in run.glob("*.json") if p.with_suffix(saved_steps.SUFFIX).exists()
                       or p.with_suffix(".mp4").exists())
        run = found[0] if found else run / "missing.json"
    try:
        plan = json.loads(run.read_text())
        if plan.get("kind") != KIND:
            raise ValueError
        request_of(plan)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        raise ValueError(f"{run} is not a Text to video run this app wrote; pass the run's folder (or the .json "
                         "beside its video), or make a new clip.") from None
    return run, plan


def request_of(plan: dict) -> Text2VideoRequest:
    """The request a run was made with, its seed the one actually used."""
    names = {f.name for f in fields(Text2VideoRequest)} - {"motion_adapter"}
    return Text2VideoRequest(**{k: plan[k] for k in names if k in plan}, motion_adapter=plan.get("adapter"))


def check_same_settings(made: Text2VideoRequest, asked: Text2VideoRequest) -> Text2VideoRequest:
    """The run's request with the asked fps, GIF and Fast decode (they only change how the finished latents become
    frames and files); a sentence when a setting that shapes the latents differs."""
    made, _, _ = check_text2video(made)
    asked_checked, _, _ = check_text2video(asked)
    for name, label in KEPT_ON_RESUME.items():
        old, new = getattr(made, name), getattr(asked_checked, name)
        if name == "seed" and int(asked.seed) == -1:
            continue  # a random seed asks for nothing in particular
        if old != new:
            raise ValueError(f"The stopped clip was made with {label} {old!r}, not {new!r}; set it back to resume "
                             "the clip, or make a new one.")
    return replace(made, fps=asked_checked.fps, gif=asked_checked.gif, fast_decode=asked_checked.fast_decode)


def resume_text_to_video(manager, run: Path, on_step: Callable[[Text2VideoUpdate], None] | None = None,
                         control: RunControl | None = None,
                         asked: Text2VideoRequest | None = None) -> Text2VideoResult:
    """Continue a stopped, crashed or cut-off clip from its last saved step: the same frames as an uninterrupted run.

    `run` is the run's folder or plan; `asked`, when given (the form's settings), must match the run's.
    """
    plan_path, plan = read_run(run)
    if plan.get("model_name") != manager.model_name:
        raise ValueError(f"This clip was made with the model {plan.get('model_name')}; switch to it to resume the "
                         f"clip (the model now is {manager.model_name}).")
    req = request_of(plan)
    if asked is not None:
        req = check_same_settings(req, asked)
    folder, name = plan_path.parent, plan_path.stem
    frames = folder / "frames" if (folder / "frames").is_dir() else folder / f"{name}-frames"
    paths = RunPaths(frames=frames, video=folder / f"{name}.mp4")
    saved = saved_steps.load(saved_steps.checkpoint_path(paths))
    if saved is None and paths.video.exists():
        raise ValueError("This clip is already finished; make a new one.")
    factor = 2 ** (len(manager.base().vae.config.block_out_channels) - 1)  # the VAE's scale
    shape = (1, 4, req.num_frames, req.height // factor, req.width // factor)
    if saved is not None and tuple(saved["latents"].shape) != shape:
        raise ValueError("The saved step does not fit this clip's frames and size; make a new clip.")
    with manager.lora_scope(req.prompt, req.negative_prompt, req.frame_prompts or "", supported="Text to video"):
        return _text_to_video(manager, req, paths, on_step, control, saved)


def _text_to_video(manager, req: Text2VideoRequest, paths: RunPaths,
                   on_step: Callable[[Text2VideoUpdate], None] | None = None,
                   control: RunControl | None = None, saved: dict | None = None) -> Text2VideoResult:
    control = control or RunControl()
    # 1. check inputs and find the adapter before any heavy work
    req, keyed, notes = check_text2video(req)
    manager.check_prompt(req.prompt, "The prompt")
    for frame, prompt in (keyed or {}).items():
        manager.check_prompt(prompt, f"The prompt at frame {frame}")
    manager.check_prompt(req.negative_prompt, "The negative prompt")
    source = motion_adapter.resolve_adapter(req.motion_adapter, manager.model_name, manager.weights_dir)
    problem = motion_adapter.availability(source)
    if problem:
        raise ValueError(problem)
    fast = lightning.recognise(source.location) or lightning.recognise(source.name)
    if fast:
        notes.extend(lightning.notes_for(req, fast))
    tiny = manager.taesd() if req.fast_decode else None  # fails now, saying where to get TAESD, before any step
    paths.frames.mkdir(parents=True, exist_ok=True)
    seed = pick_seed(req.seed)
    done_before = int(saved["step"]) if saved else 0
    paths.plan.write_text(json.dumps(parameters_of(req, seed, source, manager, done_before), indent=1))

    # 2. the pipeline: the model's VAE and text encoder, a motion UNet over its weights, a fresh scheduler
    base = manager.base()
    adapter = motion_adapter.shared_adapter(base.unet, source, manager.dtype)
    if not req.free_noise and req.num_frames > adapter.config.motion_max_seq_length:
        raise ValueError(f"This motion adapter handles at most {adapter.config.motion_max_seq_length} frames at once; "
                         "turn on FreeNoise or make fewer frames.")
    if manager.device == "cpu":
        fastpath.use_threads(manager.threads)
    from diffusers import AnimateDiffPipeline

    schedule = lightning.SCHEDULE if fast else ANIMATEDIFF_SCHEDULE
    scheduler = make_scheduler(req.sampler, {**base.scheduler.config, **schedule})
    if saved:
        scheduler = saved_steps.resumed_scheduler(scheduler, saved)
    pipe = saved_steps.resuming_pipeline(AnimateDiffPipeline, done_before, vae=decoding.decoding_vae(base.vae, tiny),
                                         text_encoder=base.text_encoder, tokenizer=base.tokenizer,
                                         unet=motion_unet(base.unet, adapter, free_noise=req.free_noise),
                                         motion_adapter=adapter, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    ov_backend.note_used("torch")  # the motion UNet always runs on PyTorch
    if req.free_noise:
        context = min(FREE_NOISE_CONTEXT, req.num_frames, adapter.config.motion_max_seq_length)
        pipe.enable_free_noise(context_length=context, context_stride=min(FREE_NOISE_STRIDE, context))

    # 3. prompts: cached embeddings, or the frame prompts for FreeNoise to blend
    if keyed is not None:
        prompts = dict(prompt=keyed, negative_prompt=req.negative_prompt)
    elif req.free_noise:
        prompts = dict(prompt=req.prompt, negative_prompt=req.negative_prompt)
    else:
        embed, negative = manager.encode(req.prompt, req.negative_prompt)
        prompts = dict(prompt_embeds=embed.to(manager.device, manager.dtype),
                       negative_prompt_embeds=negative.to(manager.device, manager.dtype))

    # 4. denoise every frame together; Stop ends the steps early
    times: list[float] = []
    generator = torch.Generator("cpu").manual_seed(seed)
    start_latents = None
    if saved:
        generator.set_state(saved["generator"])
        start_latents = saved["latents"].to(manager.device, manager.dtype)
    checkpoint = saved_steps.checkpoint_path(paths)
    preview = decoding.clip_preview(step_preview(manager) if on_step else None)  # TAESD's when present

    def on_step_end(pipe, step, timestep, tensors):
        times.append(time.perf_counter())
        saved_steps.save(checkpoint, saved_steps.snapshot(pipe.scheduler, done_before + len(times),
                                                          tensors["latents"], generator))
        if on_step:
            on_step(Text2VideoUpdate(done_before + len(times), pipe.num_timesteps, preview(tensors["latents"])))
        if control.stopped:
            pipe._interrupt = True  # diffusers skips the steps left, then decodes
        return tensors

    if control.stopped:
        return _result(paths, req, seed, 0, [], notes + ["Stopped before the first step; no clip was made."], source,
                       manager, None, True)
    started = time.perf_counter()
    out = pipe(num_frames=req.num_frames, height=req.height, width=req.width,
               num_inference_steps=req.num_inference_steps, guidance_scale=req.guidance_scale,
               generator=generator, latents=start_latents, callback_on_step_end=on_step_end,
               decode_chunk_size=decoding.chunk_size(manager.device, req.fast_decode), **prompts)
    total = pipe.num_timesteps  # more than the steps for second-order samplers (Heun, DPM2)
    steps_done = done_before + len(times)
    per_step = None
    if times:
        # the first step includes warm-up; from two steps on, the pace leaves it out
        per_step = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else times[0] - started
        per_step *= total / req.num_inference_steps  # a "step" as the user counts them
        if steps_done == total and not done_before:
            record_step_time(manager, req, per_step)
    interrupted = steps_done < total
    if interrupted:
        notes.append(f"Stopped at step {steps_done} of {total}: the clip is decoded from the partly denoised "
                     "frames, so it is noisier than a finished one. Resume continues from this step.")
    else:
        checkpoint.unlink(missing_ok=True)
    if done_before:
        notes.append(f"Resumed from step {done_before} of {total}.")
    if req.fast_decode and steps_done:
        notes.append("Fast decode: TAESD decoded the frames (less fine detail than the model's VAE).")
    frames = out.frames[0] if steps_done else []
    return _result(paths, req, seed, steps_done, frames, notes, source, manager, per_step, interrupted)


def parameters_of(req: Text2VideoRequest, seed: int, source, manager, steps_done: int) -> dict:
    """What the video's metadata and settings file record: everything needed to make it again."""
    data = {"title": "Diffusion Studio text to video", "kind": KIND, "model": manager.model_label,
            **asdict(req), "seed": seed, "motion_adapter": source.label, "steps_done": steps_done,
            "backend": "torch", "model_name": manager.model_name, "adapter": req.motion_adapter}
    fast = lightning.recognise(source.location) or lightning.recognise(source.name)
    data["scheduler_settings"] = lightning.SCHEDULE if fast else ANIMATEDIFF_SCHEDULE
    if fast:
        data["lightning_steps"] = fast.num_inference_steps
    if req.fast_decode:
        data[DECODER_FIELD] = DECODER_VALUE  # as the image tabs' PNG info says it
    return data


def _result(paths: RunPaths, req, seed, steps_done, frames, notes, source, manager, per_step,
            interrupted: bool) -> Text2VideoResult:
    # 5. frames, MP4 (and GIF) through the shared writer: watermark, AI note and settings included
    parameters = parameters_of(req, seed, source, manager, steps_done)
    paths.plan.write_text(json.dumps(parameters, indent=1))
    saved = []
    for index, frame in enumerate(frames):
        path = paths.frames / f"{index:05d}.png"
        path.write_bytes(pnginfo.png_bytes(frame, decoding.frame_parameters(parameters, index)))
        saved.append(path)
    mp4 = gif = None
    if frames:
        try:
            mp4 = video.write_mp4(frames, paths.video, req.fps, metadata=parameters)
            if req.gif:
                gif = video.write_gif(frames, paths.video.with_suffix(".gif"), min(req.fps, video.GIF_MAX_FPS))
        except RuntimeError as exc:
            raise ValueError(f"The video could not be encoded ({exc}); the {len(saved)} frames are kept in "
                             f"{paths.frames}.") from exc
    return Text2VideoResult(mp4, gif, saved, paths.plan, parameters, seed, steps_done, interrupted, notes, per_step)
