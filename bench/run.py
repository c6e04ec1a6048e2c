#!/usr/bin/env python3
"""Benchmark Diffusion Studio on this machine with the full-size SD 1.5 architecture and random weights.

    python bench/run.py [--quick] [--json] [--no-compile] [--no-allocators]

Builds SD 1.5 from the configs in presets/sd15 (nothing is downloaded) and measures, in one run: seconds per
image for our manager's default path against a plain diffusers pipeline in fp32, the UNet floor, achieved
TFLOP/s against a bf16 matmul peak, peak RSS with one pipeline against all seven tabs (and one pipeline per
task), tab and scheduler switching, latent-walk cost, batching and MP4 share, the latent error against fp32,
and the "fast" toggle. With --json it prints one JSON object; otherwise a table. BENCHMARKS.md holds a full run.

The machine is shared, so timings are noisy: compare the ratios, which come from runs taken side by side
(ours is run before and after the fp32 baseline and averaged). CPU pressure before and after is recorded.
Never part of the test run. Full run: about 15 minutes; --quick (256x256, 4 steps): under 3 minutes.
"""
from __future__ import annotations

import argparse
import copy
import gc
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch  # noqa: E402

PROMPT = "a photo of an astronaut riding a horse on the moon, detailed, sharp focus"
PROMPT_2 = "a watercolor painting of a lighthouse at dusk"
NEGATIVE = "blurry, lowres, watermark"
SEED = 1234
SAMPLER = "DPM++ 2M Karras"
GUIDANCE = 7.0
EXAMPLE_PHOTO = REPO / "presets" / "examples" / "astronaut.jpg"
PRELOADS = {"tcmalloc": "libtcmalloc_minimal.so.4", "jemalloc": "libjemalloc.so.2"}  # Debian packages
LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib", "/usr/local/lib")


@dataclass(frozen=True)
class Settings:
    """What one run measures; --quick shrinks it to finish in under 3 minutes."""

    size: int  # image side in pixels
    steps: int  # denoising steps of the timed images
    rss_steps: int  # steps of each tab's job in the memory check (memory does not grow with steps)
    walk_frames: int  # frames of the timed latent walk, at `size` and `steps`
    batch_steps: int  # steps of the batching comparison
    batch_sizes: tuple[int, ...]  # walk batch sizes compared
    repeats: int  # timed repeats of the bare UNet call
    alternatives: bool  # also time the fast-toggle methods that were not kept
    compile: bool  # time torch.compile in a child process
    allocators: bool  # time glibc, tuned glibc, tcmalloc and jemalloc in child processes


FULL = Settings(512, 20, 2, 2, 5, (1, 2, 4), 5, True, True, True)
QUICK = Settings(256, 4, 2, 2, 4, (1, 2), 3, False, False, False)


# 1. small measuring tools
class Clock:
    """Wall-clock and process CPU seconds of a block; CPU time is less hurt by other users of the machine."""

    def __enter__(self):
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0


def median(values) -> float:
    return float(statistics.median(values))


def rounded(value, digits=3):
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def memory() -> dict[str, float]:
    """Current and peak resident memory in GiB (Linux /proc), falling back to getrusage's peak."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line[:5]] = int(line.split()[1]) / 2**20
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        out = {"VmRSS": peak, "VmHWM": peak}
    return {"rss_gb": out["VmRSS"], "peak_gb": out["VmHWM"]}


def reset_peak() -> bool:
    """Restart the peak-RSS count (Linux: write 5 to clear_refs), so a phase's peak excludes the one before."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def settle() -> None:
    from engine import fastpath

    gc.collect()
    fastpath.trim_memory()


def cpu_pressure() -> dict | None:
    """Linux PSI: the share of time some task waited for a CPU; high values mean other users were busy."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(item.split("=") for item in line.split()[1:])
    return {k: float(fields[k]) for k in ("avg10", "avg60", "avg300")}


def machine() -> dict:
    model = platform.processor()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    import diffusers

    from engine.devices import cpu_flags

    flags = cpu_flags()
    return {"cpu": model, "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "bf16_instructions": sorted(flags & {"amx_bf16", "avx512_bf16"}),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__}


def matmul_peak(dtype: torch.dtype, n: int = 4096, repeats: int = 5) -> float:
    """Best TFLOP/s of an n x n matmul: the ceiling the UNet's TFLOP/s is compared with."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e12


def child(name: str, settings: Settings, extra_env: dict | None = None, timeout: int = 1200, **options) -> dict:
    """Run one measurement in a fresh process (its own allocator, memory and peak) and read its JSON line."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--size", str(settings.size),
               "--steps", str(settings.steps), "--rss-steps", str(settings.rss_steps),
               "--repeats", str(settings.repeats)]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"child {name} failed (exit {proc.returncode}): {' | '.join(tail)}"}
    return json.loads(lines[-1])


# 2. the pipelines
def bench_manager():
    """The app's PipelineManager over the full-size random SD 1.5, in the dtype it picks for this CPU.

    Bench-only: it builds from presets/sd15 instead of loading a checkpoint, records each run's final latent,
    and can turn the fast toggle on for requests that do not carry it yet.
    """
    from engine import fastpath
    from engine.components import SD15_CONFIG_DIR, build_from_configs
    from engine.manager import PipelineManager, RuntimeOptions

    accepts_fast = "fast" in inspect.signature(PipelineManager.pipeline).parameters

    class BenchManager(PipelineManager):
        fast_all = False  # every request runs with the fast toggle
        fast_interval: int | None = None  # another feature-reuse interval than the app's, to compare
        record: dict | None = None  # where the final latent of the next run goes

        def base(self):
            with self._lock:
                if self._base is None:
                    self._base = self._place(build_from_configs(SD15_CONFIG_DIR, dtype=self.dtype))
                return self._base

        @property
        def model_label(self) -> str:
            return "sd15-random"

        def pipeline(self, task: str, sampler: str, fast: bool = False):
            fast = fast or self.fast_all
            if accepts_fast and not (fast and self.fast_interval):
                pipe = super().pipeline(task, sampler, fast=fast)
            else:
                pipe = fastpath.apply_fast(super().pipeline(task, sampler), fast,
                                           self.fast_interval or fastpath.FAST_INTERVAL)
            if self.record is not None:
                record_last_latent(pipe.scheduler, self.record)
            return pipe

    return BenchManager("tiny", RuntimeOptions())


def record_last_latent(scheduler, box: dict) -> None:
    """Keep the latest step's output on a per-request scheduler: after the run it is the final latent."""
    step = scheduler.step

    def recording_step(*args, **kwargs):
        out = step(*args, **kwargs)
        latent = out[0] if isinstance(out, tuple) else out.prev_sample
        box["latent"] = latent.detach().float().clone()
        return out

    scheduler.step = recording_step


def image_request(size: int, steps: int, seed: int = SEED):
    from engine.generate import ImageRequest

    return ImageRequest(prompt=PROMPT, negative_prompt=NEGATIVE, num_inference_steps=steps, width=size,
                        height=size, seed=seed, sampler=SAMPLER, guidance_scale=GUIDANCE)


def run_ours(manager, size: int, steps: int, fast: bool = False) -> tuple[dict, torch.Tensor]:
    """One txt2img image through the engine (engine.generate.text_to_image), timed step by step."""
    from engine.generate import text_to_image

    stamps: list[float] = []
    box: dict = {}
    manager.record, manager.fast_all = box, fast
    try:
        with Clock() as clock:
            text_to_image(manager, image_request(size, steps), on_step=lambda update: stamps.append(time.perf_counter()))
    finally:
        manager.record, manager.fast_all = None, False
    return step_report(clock, stamps, steps), box["latent"]


def step_report(clock: Clock, stamps: list[float], steps: int) -> dict:
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return {"seconds": clock.wall, "cpu_seconds": clock.cpu, "steps": steps,
            "step_median_s": median(gaps) if gaps else None,
            "before_first_step_end_s": stamps[0] - clock.wall0 if stamps else None,
            "after_last_step_s": clock.wall0 + clock.wall - stamps[-1] if stamps else None}


def unet_inputs(pipe, size: int, batch: int = 2):
    """A guided step's UNet inputs: batch 2 (negative + positive), as the pipeline makes them."""
    generator = torch.Generator().manual_seed(0)
    latent = torch.randn(batch, pipe.unet.config.in_channels, size // 8, size // 8, generator=generator)
    context = torch.randn(batch, 77, pipe.unet.config.cross_attention_dim, generator=generator)
    return latent.to(pipe.unet.dtype), context.to(pipe.unet.dtype)


def time_unet(unet, latent, context, repeats: int, timestep: int = 500, cpu: list | None = None) -> list[float]:
    """Wall seconds of `repeats` UNet calls after one warm-up; their CPU seconds go to `cpu` if given."""
    times = []
    with torch.no_grad():  # as in diffusers' pipelines
        unet(latent, timestep, encoder_hidden_states=context, return_dict=False)
        for _ in range(repeats):
            with Clock() as clock:
                unet(latent, timestep, encoder_hidden_states=context, return_dict=False)
            times.append(clock.wall)
            if cpu is not None:
                cpu.append(clock.cpu)
    return times


def unet_flops(unet, latent, context) -> dict:
    """FLOPs of one guided UNet call; torch's counter skips the CPU flash-attention kernel, so it is added."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

    def cpu_flash(query, key, value, *args, out_shape=None, **kwargs):
        return sdpa_flop_count(query, key, value)

    mapping = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        mapping[op] = cpu_flash
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        unet(latent, 500, encoder_hidden_states=context, return_dict=False)
    per_op = counter.get_flop_counts().get("Global", {})
    attention = sum(v for k, v in per_op.items() if "attention" in str(k))
    return {"total": counter.get_total_flops(), "attention": attention}


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


# 3. the seven tabs, each run once
def face_box(photo) -> tuple[int, int, int, int]:
    """The largest face (OpenCV Haar cascade), or the middle third of the photo if none is found."""
    w, h = photo.size
    try:
        import cv2
        import numpy as np

        gray = cv2.cvtColor(np.asarray(photo.convert("RGB")), cv2.COLOR_RGB2GRAY)
        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        faces = cascade.detectMultiScale(gray, 1.1, 5)
        if len(faces):
            x, y, fw, fh = max(faces, key=lambda f: f[2] * f[3])
            return int(x), int(y), int(x + fw), int(y + fh)
    except Exception:
        pass
    return w // 3, h // 3, 2 * w // 3, 2 * h // 3


def face_inpaint(manager, photo, size: int, steps: int, prompt: str, count: int) -> None:
    """Aging/gender-swap stand-in: inpaint an ellipse over the face, only-masked, at the model's size."""
    from PIL import Image, ImageDraw

    from engine.generate import ImageRequest, inpaint

    mask = Image.new("L", photo.size, 0)
    x0, y0, x1, y1 = face_box(photo)
    pad_x, pad_y = (x1 - x0) // 4, (y1 - y0) // 4
    ImageDraw.Draw(mask).ellipse((x0 - pad_x, y0 - pad_y, x1 + pad_x, y1 + pad_y), fill=255)
    for n in range(count):
        inpaint(manager, ImageRequest(prompt=prompt, negative_prompt=NEGATIVE, num_inference_steps=steps,
                                      width=size, height=size, seed=SEED + n, sampler=SAMPLER, strength=0.55,
                                      only_masked=True), photo, mask)


def run_all_tabs(manager, size: int, steps: int, folder: Path) -> dict:
    """txt2img, img2img, inpaint, latent walk, dream, aging and gender swap, once each; returns notes."""
    from PIL import Image, ImageDraw

    from engine.generate import image_to_image, inpaint, text_to_image
    from engine.walk import RunPaths, dream_request, latent_walk

    notes = {}
    photo = Image.open(EXAMPLE_PHOTO).convert("RGB")
    image = text_to_image(manager, image_request(size, steps)).images[0].image
    image_to_image(manager, image_request(size, steps), image)
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).rectangle((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=255)
    inpaint(manager, image_request(size, steps), image, mask)
    latent_walk(manager, walk_request(size, steps, 2, 1), RunPaths.in_folder(folder / "walk", "walk"))
    latent_walk(manager, dream_request(PROMPT, 2, seed=SEED, num_frames=2, num_inference_steps=steps, width=size,
                                       height=size, sampler=SAMPLER, fps=8),
                RunPaths.in_folder(folder / "dream", "dream"))
    try:
        from engine.aging import AgingRequest, aging_timelapse

        aging_timelapse(manager, AgingRequest(ages=[20, 70], num_inference_steps=steps, transition_frames=0,
                                              seed=SEED, size=size), photo, folder / "aging")
        notes["aging"] = "engine.aging.aging_timelapse, 2 ages"
    except Exception as exc:  # the module is new or its face detector is missing: same work, by hand
        face_inpaint(manager, photo, size, steps, "portrait photo of a 70 year old person", 2)
        notes["aging"] = f"engine.aging failed ({type(exc).__name__}: {exc}); ran 2 inpaint calls on the face instead"
    try:
        from engine.gender import GenderRequest, gender_swap

        gender_swap(manager, GenderRequest(direction="woman", num_inference_steps=steps, seed=SEED, variants=1,
                                           size=size), photo)
        notes["gender_swap"] = "engine.gender.gender_swap, 1 variant"
    except Exception as exc:
        face_inpaint(manager, photo, size, steps, "portrait photo of a woman", 1)
        notes["gender_swap"] = f"engine.gender failed ({type(exc).__name__}: {exc}); ran 1 inpaint call on the face instead"
    return notes


def walk_request(size: int, steps: int, frames: int, batch_size: int):
    from engine.walk import WalkRequest

    return WalkRequest(prompts=[PROMPT, PROMPT_2], seeds=[SEED, SEED + 1], negative_prompt=NEGATIVE,
                       num_frames=frames, fps=8, num_inference_steps=steps, guidance_scale=GUIDANCE, width=size,
                       height=size, sampler=SAMPLER, batch_size=batch_size)


def run_walk(manager, size: int, steps: int, frames: int, batch_size: int, folder: Path) -> dict:
    """A latent walk through the engine, timed, then its MP4 encode timed again alone for its share."""
    from PIL import Image

    from engine import video
    from engine.walk import RunPaths, latent_walk

    paths = RunPaths.in_folder(Path(tempfile.mkdtemp(prefix=f"walk-b{batch_size}-", dir=folder)), "walk")
    with Clock() as clock:
        result = latent_walk(manager, walk_request(size, steps, frames, batch_size), paths)
    images = [Image.open(p).convert("RGB") for p in result.frames]
    with Clock() as encode:
        video.write_mp4(images, folder / "encode-again.mp4", 8)
    return {"seconds": clock.wall, "cpu_seconds": clock.cpu, "frames": len(result.frames),
            "seconds_per_frame": clock.wall / frames, "cpu_seconds_per_frame": clock.cpu / frames,
            "mp4_encode_seconds": encode.wall, "mp4_share": encode.wall / clock.wall}


# 4. child processes
def child_plain_fp32(args) -> dict:
    """What a user gets by default: diffusers' StableDiffusionPipeline in fp32, default attention, DPM++ 2M Karras."""
    from diffusers import DPMSolverMultistepScheduler

    from engine.components import SD15_CONFIG_DIR, build_from_configs

    pipe = build_from_configs(SD15_CONFIG_DIR, dtype=torch.float32).to(torch.float32)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, use_karras_sigmas=True)
    pipe.set_progress_bar_config(disable=True)
    common = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "height": args.size, "width": args.size,
              "guidance_scale": GUIDANCE}
    pipe(**common, num_inference_steps=1)  # warm-up, as ours gets
    stamps, box = [], {}

    def on_step(pipe_, step, timestep, tensors):
        stamps.append(time.perf_counter())
        box["latent"] = tensors["latents"].detach().float().clone()
        return tensors

    with Clock() as clock:
        pipe(**common, num_inference_steps=args.steps, generator=torch.Generator("cpu").manual_seed(SEED),
             callback_on_step_end=on_step, callback_on_step_end_tensor_inputs=["latents"])
    torch.save(box["latent"], args.out)
    return step_report(clock, stamps, args.steps)


def child_naive(args) -> dict:
    """One pipeline per task, each with its own copy of the weights, as tools without a manager do."""
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline, StableDiffusionPipeline
    from PIL import Image

    from engine.components import SD15_CONFIG_DIR, build_from_configs
    from engine.devices import pick_dtype
    from engine.schedulers import make_scheduler

    dtype = pick_dtype("cpu")
    first = build_from_configs(SD15_CONFIG_DIR, dtype=dtype)
    pipes = []
    for cls in (StableDiffusionPipeline, StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline):
        parts = first.components if not pipes else copy.deepcopy(first.components)
        pipe = cls(**parts, requires_safety_checker=False)
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
        pipe.scheduler = make_scheduler(SAMPLER, pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        pipes.append(pipe)
    settle()
    loaded = memory()["rss_gb"]
    reset_peak()
    image = Image.new("RGB", (args.size, args.size), (120, 90, 60))
    mask = Image.new("L", (args.size, args.size), 255)
    common = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "num_inference_steps": args.rss_steps,
              "height": args.size, "width": args.size}
    pipes[0](**common)
    pipes[1](**common, image=image)
    pipes[2](**common, image=image, mask_image=mask)
    return {"loaded_gb": loaded, "peak_gb": memory()["peak_gb"], "pipelines": len(pipes)}


def child_allocator(args) -> dict:
    """Time UNet steps and a short pipeline under whichever allocator this process was started with."""
    from engine import fastpath
    from engine.components import SD15_CONFIG_DIR, build_from_configs
    from engine.devices import pick_dtype
    from engine.schedulers import make_scheduler

    pipe = build_from_configs(SD15_CONFIG_DIR, dtype=pick_dtype("cpu"))
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.vae.to(memory_format=torch.channels_last)
    pipe.scheduler = make_scheduler(SAMPLER, pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    settle()
    tuned = fastpath.tune_allocator() if args.tune else False
    latent, context = unet_inputs(pipe, args.size)
    steps = time_unet(pipe.unet, latent, context, args.repeats)
    embeds = context[:1]
    with Clock() as clock:
        pipe(prompt_embeds=embeds, negative_prompt_embeds=torch.zeros_like(embeds), num_inference_steps=3,
             height=args.size, width=args.size, generator=torch.Generator().manual_seed(SEED))
    return {"unet_step_s": median(steps), "pipeline_3_steps_s": clock.wall, "tuned_glibc": tuned,
            "peak_gb": memory()["peak_gb"]}


def child_compile(args) -> dict:
    """torch.compile of the UNet: warm-up time, step time against eager, and the memory it holds."""
    from engine import fastpath
    from engine.components import SD15_CONFIG_DIR, build_from_configs
    from engine.devices import pick_dtype

    pipe = build_from_configs(SD15_CONFIG_DIR, dtype=pick_dtype("cpu"))
    pipe.unet.to(memory_format=torch.channels_last)
    settle()
    fastpath.tune_allocator()
    latent, context = unet_inputs(pipe, args.size)
    eager = time_unet(pipe.unet, latent, context, args.repeats)
    before = memory()["rss_gb"]
    fastpath.compile_unet(pipe)
    with Clock() as warm:
        with torch.no_grad():
            pipe.unet(latent, 500, encoder_hidden_states=context, return_dict=False)
    compiled = time_unet(pipe.unet, latent, context, args.repeats)
    settle()
    return {"eager_step_s": median(eager), "compiled_step_s": median(compiled),
            "step_speedup": median(eager) / median(compiled), "warmup_s": warm.wall,
            "rss_before_gb": before, "rss_after_gb": memory()["rss_gb"]}


CHILDREN = {"plain": child_plain_fp32, "naive": child_naive, "allocator": child_allocator, "compile": child_compile}


# 5. the run
def main_run(settings: Settings, progress) -> dict:
    from engine import fastpath

    size, steps = settings.size, settings.steps
    out: dict = {"settings": asdict(settings), "machine": machine(), "cpu_pressure_start": cpu_pressure()}
    work = Path(tempfile.mkdtemp(prefix="ds-bench-"))

    progress("matmul peak")
    out["matmul_tflops"] = {"bf16": matmul_peak(torch.bfloat16), "fp32": matmul_peak(torch.float32, repeats=2)}

    if settings.allocators:
        progress("allocators (child processes)")
        out["allocators"] = allocator_figures(settings)
    if settings.compile:
        progress("torch.compile (child process)")
        out["compile"] = child("compile", settings, timeout=1500)

    # a. one manager for every tab; its memory first
    progress("building ours")
    manager = bench_manager()
    with Clock() as build:
        pipe = manager.base()
    tuned = fastpath.tune_allocator()  # what the manager does once its weights are placed
    settle()
    loaded = memory()["rss_gb"]
    peak_reset = reset_peak()
    progress("memory: one image, then all seven tabs")
    text_to_image_once(manager, size, settings.rss_steps)
    one = memory()["peak_gb"]
    notes = run_all_tabs(manager, size, settings.rss_steps, work / "tabs")
    all_tabs = memory()["peak_gb"]
    progress("memory: one pipeline per task (child process)")
    naive = child("naive", settings)
    out["memory"] = {"loaded_gb": loaded, "peak_one_image_gb": one, "peak_all_tabs_gb": all_tabs,
                     "all_tabs_over_loaded": all_tabs / loaded, "peak_reset_worked": peak_reset,
                     "naive_one_pipeline_per_task": naive, "tab_jobs": notes,
                     "naive_over_shared": (naive.get("peak_gb", float("nan")) / all_tabs)}
    out["ours_dtype"] = str(manager.dtype).replace("torch.", "")
    out["ours_build_s"] = build.wall
    out["allocator_tuned"] = tuned

    # b. seconds per image: ours, plain fp32, ours again
    progress(f"ours {size}px {steps} steps")
    run_ours(manager, size, 1)  # warm-up, as a running server is
    ours_a, latent_a = run_ours(manager, size, steps)
    progress(f"plain fp32 {size}px {steps} steps (child process)")
    reference = work / "fp32-latent.pt"
    plain = child("plain", settings, out=reference, timeout=3000)
    progress(f"ours again {size}px {steps} steps")
    ours_b, latent_b = run_ours(manager, size, steps)
    ours_seconds = (ours_a["seconds"] + ours_b["seconds"]) / 2
    ours_cpu = (ours_a["cpu_seconds"] + ours_b["cpu_seconds"]) / 2
    out["ours"] = {"runs": [ours_a, ours_b], "seconds": ours_seconds, "cpu_seconds": ours_cpu,
                   "deterministic": torch.equal(latent_a, latent_b)}
    out["plain_fp32"] = plain
    if "error" not in plain:
        fp32_latent = torch.load(reference)
        out["speedup_vs_plain_fp32"] = plain["seconds"] / ours_seconds
        out["speedup_vs_plain_fp32_cpu_time"] = plain["cpu_seconds"] / ours_cpu
        out["latent_rel_error"] = relative_error(latent_a, fp32_latent)
    else:
        fp32_latent = None

    # c. a latent walk, timed right after the image runs it is compared with
    progress("latent walk")
    walk = run_walk(manager, size, steps, settings.walk_frames, 1, work)
    out["walk_frame_over_image"] = walk["seconds_per_frame"] / ours_seconds
    out["walk_frame_over_image_cpu_time"] = walk["cpu_seconds_per_frame"] / ours_cpu

    # d. the fast toggle, also timed next to the image runs
    progress("fast toggle")
    fast, fast_latent = run_ours(manager, size, steps, fast=True)
    out["fast"] = {"method": f"feature reuse (DeepCache), full UNet every {fastpath.FAST_INTERVAL} steps",
                   "seconds": fast["seconds"], "cpu_seconds": fast["cpu_seconds"], "run": fast,
                   "speedup_vs_default": ours_seconds / fast["seconds"],
                   "speedup_vs_default_cpu_time": ours_cpu / fast["cpu_seconds"],
                   "latent_rel_error_vs_default": relative_error(fast_latent, latent_a)}
    if fp32_latent is not None:
        out["fast"]["speedup_vs_plain_fp32"] = plain["seconds"] / fast["seconds"]
        out["fast"]["latent_rel_error_vs_fp32"] = relative_error(fast_latent, fp32_latent)

    # e. the UNet floor and its TFLOP/s
    progress("UNet floor and FLOPs")
    latent, context = unet_inputs(pipe, size)
    step_cpu: list[float] = []
    step_times = time_unet(pipe.unet, latent, context, settings.repeats, cpu=step_cpu)
    floor = steps * median(step_times)
    flops = unet_flops(pipe.unet, latent, context)
    achieved = flops["total"] / median(step_times) / 1e12
    out["unet"] = {"step_s": median(step_times), "step_cpu_s": median(step_cpu), "step_times": step_times,
                   "floor_s": floor, "flops_per_step": flops["total"], "attention_flops_per_step": flops["attention"],
                   "achieved_tflops": achieved, "share_of_bf16_matmul_peak": achieved / out["matmul_tflops"]["bf16"],
                   "floor_at_matmul_peak_s": steps * flops["total"] / (out["matmul_tflops"]["bf16"] * 1e12)}
    out["floor_ratio"] = ours_seconds / floor
    out["floor_ratio_cpu_time"] = ours_cpu / (steps * median(step_cpu))

    # f. video: batching and the MP4 share
    batching = {}
    for batch in settings.batch_sizes:
        progress(f"walk batching: batch {batch}")
        batching[str(batch)] = run_walk(manager, size, settings.batch_steps, max(2, batch), batch, work)
    per_frame_1 = batching["1"]["seconds_per_frame"]
    out["video"] = {"walk": walk, "frame_seconds": walk["seconds_per_frame"], "image_seconds": ours_seconds,
                    "mp4_share": walk["mp4_share"], "batching_steps": settings.batch_steps, "batching": batching,
                    "batching_gain": {b: per_frame_1 / r["seconds_per_frame"] for b, r in batching.items()},
                    "batching_gain_cpu_time": {b: batching["1"]["cpu_seconds_per_frame"] / r["cpu_seconds_per_frame"]
                                               for b, r in batching.items()}}

    # g. what the fast toggle was chosen over
    if settings.alternatives:
        progress("fast toggle alternatives")
        out["fast_alternatives"] = fast_alternatives(manager, size, steps, ours_seconds, latent_a)

    # h. switching tabs and samplers
    progress("switching")
    out["switching"] = switching(manager, pipe)
    out["tab_switch_ms"] = out["switching"]["tab_switch_ms"]
    out["scheduler_switch_ms"] = out["switching"]["scheduler_switch_ms"]

    out["rss_all_tabs_over_one"] = all_tabs / one
    out["cpu_pressure_end"] = cpu_pressure()
    return out


def text_to_image_once(manager, size: int, steps: int) -> None:
    from engine.generate import text_to_image

    text_to_image(manager, image_request(size, steps))


def fast_alternatives(manager, size: int, steps: int, ours_seconds: float, reference) -> dict:
    """What the fast toggle could have been: feature reuse every 2 steps, or half the steps."""
    alternatives = {}
    manager.fast_interval = 2
    try:
        run, latent = run_ours(manager, size, steps, fast=True)
    finally:
        manager.fast_interval = None
    alternatives["feature_reuse_every_2"] = {"seconds": run["seconds"], "speedup_vs_default": ours_seconds / run["seconds"],
                                             "latent_rel_error_vs_default": relative_error(latent, reference)}
    run, latent = run_ours(manager, size, steps // 2)
    alternatives[f"half_steps_{steps // 2}"] = {"seconds": run["seconds"],
                                                "speedup_vs_default": ours_seconds / run["seconds"],
                                                "latent_rel_error_vs_default": relative_error(latent, reference)}
    return alternatives


def switching(manager, base) -> dict:
    """Per-request pipelines across tasks (a tab switch) and fresh schedulers across samplers; no reload."""
    from engine.schedulers import make_scheduler, sampler_names

    tasks = ("txt2img", "img2img", "inpaint")
    weights = {p.data_ptr() for p in base.unet.parameters()}
    for task in tasks:
        manager.pipeline(task, SAMPLER)
    tab_times = []
    for _ in range(20):
        for task in tasks:
            start = time.perf_counter()
            manager.pipeline(task, SAMPLER)
            tab_times.append((time.perf_counter() - start) * 1000)
    names = sampler_names()
    config = base.scheduler.config
    for name in names:
        make_scheduler(name, config)
    scheduler_times, sampler_pipeline_times = [], []
    for _ in range(5):
        for name in names:
            start = time.perf_counter()
            make_scheduler(name, config)
            scheduler_times.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            manager.pipeline("txt2img", name)
            sampler_pipeline_times.append((time.perf_counter() - start) * 1000)
    reloaded = manager.base() is not base or {p.data_ptr() for p in manager.base().unet.parameters()} != weights
    return {"tab_switch_ms": median(tab_times), "tab_switch_max_ms": max(tab_times),
            "scheduler_switch_ms": median(scheduler_times), "scheduler_switch_max_ms": max(scheduler_times),
            "sampler_change_with_pipeline_ms": median(sampler_pipeline_times), "reloaded": reloaded}


def allocator_figures(settings: Settings) -> dict:
    """The same UNet steps under glibc, glibc tuned by fastpath.tune_allocator, tcmalloc and jemalloc."""
    runs = {"glibc": child("allocator", settings, tune=0),
            "glibc_tuned": child("allocator", settings, tune=1)}
    for name, library in PRELOADS.items():
        path = next((Path(d) / library for d in LIB_DIRS if (Path(d) / library).exists()), None)
        runs[name] = (child("allocator", settings, extra_env={"LD_PRELOAD": str(path)}, tune=0) if path else
                      {"error": f"{library} not installed (Debian: apt-get install "
                                f"{'libtcmalloc-minimal4' if name == 'tcmalloc' else 'libjemalloc2'})"})
    base = runs["glibc"]
    for name, run in runs.items():
        if "error" not in run and "error" not in base:
            run["unet_speedup_vs_glibc"] = base["unet_step_s"] / run["unet_step_s"]
            run["pipeline_speedup_vs_glibc"] = base["pipeline_3_steps_s"] / run["pipeline_3_steps_s"]
    return runs


# 6. output
TARGETS = [  # key, target, direction, label
    ("speedup_vs_plain_fp32", 5.0, ">=", "speed-up vs plain fp32"),
    ("floor_ratio", 1.15, "<=", "total / UNet floor"),
    ("fast.speedup_vs_default", 1.8, ">=", "fast toggle speed-up again"),
    ("rss_all_tabs_over_one", 1.1, "<=", "peak RSS all tabs / one"),
    ("tab_switch_ms", 50.0, "<=", "tab switch (ms)"),
    ("scheduler_switch_ms", 10.0, "<=", "scheduler switch (ms)"),
    ("walk_frame_over_image", 1.05, "<=", "walk frame / image"),
    ("latent_rel_error", 0.02, "<=", "latent error vs fp32"),
]


def lookup(data: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def add_verdicts(out: dict) -> None:
    verdicts = {}
    for key, target, direction, _ in TARGETS:
        value = lookup(out, key)
        if value is not None:
            verdicts[key] = {"value": value, "target": f"{direction} {target:g}",
                             "met": value >= target if direction == ">=" else value <= target}
    out["targets"] = verdicts


def table(out: dict) -> str:
    lines = [f"Diffusion Studio benchmark: {out['machine']['cpu']}, {out['machine']['logical_cpus']} CPUs, "
             f"torch {out['machine']['torch']}, {out['settings']['size']}px, {out['settings']['steps']} steps"]
    for key, _, _, label in TARGETS:
        verdict = out["targets"].get(key)
        if verdict:
            mark = "met" if verdict["met"] else "NOT met"
            lines.append(f"  {label:32s} {verdict['value']:10.3f}   target {verdict['target']:8s} {mark}")
    lines.append(f"  ours {out['ours']['seconds']:.1f} s/image ({out['ours_dtype']}), plain fp32 "
                 f"{out['plain_fp32'].get('seconds', float('nan')):.1f} s, fast {out['fast']['seconds']:.1f} s, "
                 f"UNet floor {out['unet']['floor_s']:.1f} s")
    lines.append(f"  UNet {out['unet']['achieved_tflops']:.2f} TFLOP/s of a {out['matmul_tflops']['bf16']:.2f} "
                 f"bf16 matmul peak; memory: loaded {out['memory']['loaded_gb']:.2f} GiB, one image "
                 f"{out['memory']['peak_one_image_gb']:.2f}, all tabs {out['memory']['peak_all_tabs_gb']:.2f}, "
                 f"one pipeline per task {out['memory']['naive_one_pipeline_per_task'].get('peak_gb', float('nan')):.2f}")
    lines.append(f"  walk: {out['video']['frame_seconds']:.1f} s/frame, MP4 {100 * out['video']['mp4_share']:.1f}% "
                 f"of the walk, batching gain {rounded(out['video']['batching_gain'], 2)}")
    pressure = max((out.get(k) or {}).get("avg60", 0) for k in ("cpu_pressure_start", "cpu_pressure_end"))
    if pressure > 20:
        lines.append(f"  WARNING: other processes kept the CPUs busy (pressure up to {pressure:.0f}%); "
                     "the timings are unreliable, run again on a quiet machine.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256x256, 4 steps: under 3 minutes")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile measurement")
    parser.add_argument("--no-allocators", action="store_true", help="skip the allocator comparison")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rss-steps", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--tune", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quiet_libraries()
    if args.child:
        print(json.dumps(rounded(CHILDREN[args.child](args), 4)))
        return 0
    settings = QUICK if args.quick else FULL
    settings = Settings(**{**asdict(settings), "compile": settings.compile and not args.no_compile,
                           "allocators": settings.allocators and not args.no_allocators})
    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", file=sys.stderr, flush=True)

    out = main_run(settings, progress)
    out["bench_seconds"] = time.perf_counter() - started
    add_verdicts(out)
    out = rounded(out, 4)
    print(json.dumps(out, indent=1) if args.json else table(out))
    return 0


def quiet_libraries() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("diffusers", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)


if __name__ == "__main__":
    sys.exit(main())
