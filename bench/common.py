"""Shared measuring tools for the benchmark: settings, clocks, memory, child processes, and the app's manager
over the full-size random SD 1.5."""
from __future__ import annotations

import gc
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUN = Path(__file__).resolve().parent / "run.py"  # the entry point children are started with
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
    """Current and peak resident memory in GiB (Linux /proc), falling back to getrusage's peak.

    On Linux also the split of the current figure: anonymous pages (only this process's) and file pages (mapped
    files: shareable, and reclaimable by the kernel without swap).
    """
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:", "RssAnon:", "RssFile:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) / 2**20
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        out = {"VmRSS": peak, "VmHWM": peak}
    split = {"rss_anon_gb": out["RssAnon"], "rss_file_gb": out["RssFile"]} if "RssAnon" in out else {}
    return {"rss_gb": out["VmRSS"], "peak_gb": out["VmHWM"], **split}


def reset_peak() -> bool:
    """Restart the peak-RSS count (Linux: write 5 to clear_refs), so a phase's peak excludes the one before."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def settle() -> None:
    from engine.backends import fastpath

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

    from engine.pipeline.devices import cpu_flags

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
    command = [sys.executable, str(RUN), "--child", name, "--size", str(settings.size),
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
def full_size_class():
    """The app's PipelineManager over the full-size random SD 1.5: built from presets/sd15, never loaded."""
    from engine.pipeline.components import SD15_CONFIG_DIR, build_from_configs
    from engine.pipeline.manager import PipelineManager

    class FullSize(PipelineManager):
        def base(self):
            with self._lock:
                if self._base is None:
                    self._base = self._place(build_from_configs(SD15_CONFIG_DIR, dtype=self.dtype))
                return self._base

        @property
        def model_label(self) -> str:
            return "sd15-random"

    return FullSize


def bench_manager(weights_dir: Path | None = None):
    """The app's PipelineManager over the full-size random SD 1.5, in the dtype it picks for this CPU.

    Bench-only: it builds from presets/sd15 instead of loading a checkpoint, records each run's final latent,
    and can turn the fast toggle on for requests that do not carry it yet. `weights_dir` is a scratch folder
    for the LoRA and TAESD files the bench makes (never the repo's weights/).
    """
    from engine.backends import fastpath
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    accepts_fast = "fast" in inspect.signature(PipelineManager.pipeline).parameters

    class BenchManager(full_size_class()):
        fast_all = False  # every request runs with the fast toggle
        fast_interval: int | None = None  # another feature-reuse interval than the app's, to compare
        record: dict | None = None  # where the final latent of the next run goes

        def pipeline(self, task: str, sampler: str, fast: bool = False, identity: bool = False, **options):
            fast = fast or self.fast_all
            if identity:
                pipe = super().pipeline(task, sampler, fast=fast, identity=identity, **options)
            elif accepts_fast and not (fast and self.fast_interval):
                pipe = super().pipeline(task, sampler, fast=fast, **options)
            else:
                pipe = fastpath.apply_fast(super().pipeline(task, sampler, **options), fast,
                                           self.fast_interval or fastpath.FAST_INTERVAL)
            if self.record is not None:
                record_last_latent(pipe.scheduler, self.record)
            return pipe

    # `auto`, the app's default: "ours" is the OpenVINO path on x86, and `torch_path` figures give PyTorch's beside it
    folders = {"weights_dir": weights_dir} if weights_dir is not None else {}
    return BenchManager("tiny", RuntimeOptions(backend="auto"), **folders)


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
    from engine.image.request import ImageRequest

    return ImageRequest(prompt=PROMPT, negative_prompt=NEGATIVE, num_inference_steps=steps, width=size,
                        height=size, seed=seed, sampler=SAMPLER, guidance_scale=GUIDANCE)


def run_ours(manager, size: int, steps: int, fast: bool = False) -> tuple[dict, torch.Tensor]:
    """One txt2img image through the engine (engine.image.generate.text_to_image), timed step by step."""
    from engine.image.generate import text_to_image

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

