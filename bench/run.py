#!/usr/bin/env python3
"""Benchmark Diffusion Studio on this machine with the full-size SD 1.5 architecture and random weights.

    python bench/run.py [--quick] [--json] [--no-compile] [--no-allocators] [--partial FILE]

Builds SD 1.5 from the configs in presets/sd15 (nothing is downloaded) and measures, in one run: seconds per
image for our manager's default path against a plain diffusers pipeline in fp32, the UNet floor, achieved
TFLOP/s against a bf16 matmul peak, peak RSS with one pipeline against all seven tabs (and one pipeline per
task), tab and scheduler switching, latent-walk cost, batching and MP4 share, the latent error against fp32,
and the "fast" toggle. Issue 25's figures too: int8 against bf16, the int8 20-step image, Few-step mode (a random
LCM-shaped LoRA and a random full-size TAESD made in a scratch weights folder) on the fused OpenVINO model, the
switch between it and the plain model, Fast as the running back end resolves it, a per-stage breakdown (text
encoder, UNet, VAE, watermark, write, other) of the default, int8, few-step and fast images, and Text to video's
Lightning ÷ 10-step clip (bench/text2video.py in a child process). Every target row gets a verdict under its
issue's name (bench/targets.py). With --json it prints one JSON object; otherwise a table. BENCHMARKS.md holds
the runs; --partial saves what was measured so far at every stage, for a run that has to be cut short.

The machine is shared, so timings are noisy: compare the ratios, which come from runs taken side by side
(ours is run before and after the fp32 baseline and averaged). CPU pressure before and after is recorded.
Never part of the test run. Full run: about 45 minutes on a quiet 2-core machine; --quick (256x256, 4 steps): about
15 minutes.
"""
from __future__ import annotations

import argparse
import atexit
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bench import backends  # noqa: E402
from bench.common import (  # noqa: E402
    FULL,
    QUICK,
    Clock,
    Settings,
    bench_manager,
    child,
    cpu_pressure,
    image_request,
    machine,
    matmul_peak,
    median,
    memory,
    relative_error,
    reset_peak,
    rounded,
    run_ours,
    settle,
    time_unet,
    unet_flops,
    unet_inputs,
)
from bench.fewstep import add_fewstep_figures, fast_request, fewstep_request, make_weights  # noqa: E402
from bench.flops import add_efficiency  # noqa: E402
from bench.images import allocator_figures, child_allocator, child_compile, child_plain_fp32, fast_alternatives, switching  # noqa: E402
from bench.int8_path import all_tabs_with_int8_and_fewstep, use_int8  # noqa: E402
from bench.memory import child_naive, run_all_tabs, text_to_image_once  # noqa: E402
from bench.precision import add_int8_figures, child_int8  # noqa: E402
from bench.stages import staged_image  # noqa: E402
from bench.targets import add_verdicts, stage_lines, verdict_lines  # noqa: E402
from bench.video import run_walk  # noqa: E402

CHILDREN = {"plain": child_plain_fp32, "naive": child_naive, "allocator": child_allocator, "compile": child_compile,
            "openvino_cache": backends.child_openvino_cache, "int8": child_int8}


# 5. the run
def main_run(settings: Settings, progress, out: dict | None = None) -> dict:
    from engine.backends import fastpath

    size, steps = settings.size, settings.steps
    out = {} if out is None else out  # filled in place, so --partial can save what a cut-short run measured
    out.update({"settings": asdict(settings), "machine": machine(), "cpu_pressure_start": cpu_pressure()})
    work = Path(tempfile.mkdtemp(prefix="ds-bench-"))
    atexit.register(shutil.rmtree, work, True)  # OpenVINO's caches and the models made here: about 10 GB

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
    cache = backends.use_fresh_cache(work / "openvino-cache")
    weights = work / "weights"  # the bench's LoRA and TAESD go here when the few-step part starts
    manager = bench_manager(weights)
    with Clock() as build:
        pipe = manager.base()
    tuned = fastpath.tune_allocator()  # what the manager does once its weights are placed
    settle()
    loaded_split = memory()
    loaded = loaded_split["rss_gb"]
    out["backend"] = {"default": manager.backend, "reason": manager.backend_choice.reason}
    if manager.openvino() is not None:
        progress("OpenVINO warm-up: first time (conversion and compile)")
        first = backends.warm_up(manager, pipe, size)
        progress("OpenVINO warm-up: from the disk cache (child process)")
        again = backends.from_cache(settings, cache)
        out["openvino_warmup"] = {"first": first, "from_cache": again}
        out["openvino_warmup_s"] = {"first": first.get("seconds"), "from_cache": again.get("seconds")}
    active_split = memory()
    active = active_split["rss_gb"]
    peak_reset = reset_peak()
    progress("memory: one image, then all seven tabs")
    text_to_image_once(manager, size, settings.rss_steps)
    one = memory()["peak_gb"]
    notes = run_all_tabs(manager, size, settings.rss_steps, work / "tabs")
    all_tabs = memory()["peak_gb"]
    progress("memory: one pipeline per task (child process)")
    naive = child("naive", settings)
    out["memory"] = {"loaded_gb": loaded, "rss_openvino_active_gb": active,
                     "loaded_anon_file_gb": [loaded_split.get("rss_anon_gb"), loaded_split.get("rss_file_gb")],
                     "openvino_active_anon_file_gb": [active_split.get("rss_anon_gb"),
                                                      active_split.get("rss_file_gb")],
                     "peak_one_image_gb": one,
                     "peak_all_tabs_gb": all_tabs,
                     "all_tabs_over_loaded": all_tabs / loaded, "peak_reset_worked": peak_reset,
                     "naive_one_pipeline_per_task": naive, "tab_jobs": notes,
                     "naive_over_shared": (naive.get("peak_gb", float("nan")) / all_tabs)}
    out["ours_dtype"] = str(manager.dtype).replace("torch.", "")
    out["ours_build_s"] = build.wall
    out["allocator_tuned"] = tuned

    # b. seconds per image: ours (the auto path), today's torch path, plain fp32, then torch and ours again
    progress(f"ours ({manager.backend}) {size}px {steps} steps")
    run_ours(manager, size, 1)  # warm-up, as a running server is
    ours_a, latent_a = run_ours(manager, size, steps)
    progress(f"torch path {size}px {steps} steps")
    with backends.torch_path(manager):
        run_ours(manager, size, 1)
        torch_a, torch_latent = run_ours(manager, size, steps)
    progress(f"plain fp32 {size}px {steps} steps (child process)")
    reference = work / "fp32-latent.pt"
    plain = child("plain", settings, out=reference, timeout=3000)
    progress(f"torch path again {size}px {steps} steps")
    with backends.torch_path(manager):
        torch_b, _ = run_ours(manager, size, steps)
    progress(f"ours ({manager.backend}) again {size}px {steps} steps")
    ours_b, latent_b = run_ours(manager, size, steps)
    torch_seconds = (torch_a["seconds"] + torch_b["seconds"]) / 2
    out["torch_path"] = {"runs": [torch_a, torch_b], "seconds": torch_seconds,
                         "cpu_seconds": (torch_a["cpu_seconds"] + torch_b["cpu_seconds"]) / 2}
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
        out["torch_path"]["latent_rel_error"] = relative_error(torch_latent, fp32_latent)
        out["torch_path"]["speedup_vs_plain_fp32"] = plain["seconds"] / torch_seconds
        if manager.openvino() is not None:
            out["openvino_latent_rel_error"] = out["latent_rel_error"]
    else:
        fp32_latent = None

    if manager.openvino() is not None:
        out["openvino_speedup_vs_torch"] = torch_seconds / ours_seconds
        out["openvino_speedup_vs_torch_cpu_time"] = out["torch_path"]["cpu_seconds"] / ours_cpu
        out["openvino_latent_rel_error_vs_torch"] = relative_error(latent_a, torch_latent)

    # c. a latent walk, timed right after the image runs it is compared with
    progress("latent walk")
    walk = run_walk(manager, size, steps, settings.walk_frames, 1, work)
    out["walk_frame_over_image"] = walk["seconds_per_frame"] / ours_seconds
    out["walk_frame_over_image_cpu_time"] = walk["cpu_seconds_per_frame"] / ours_cpu

    # d. few-step mode, and the fast toggle, also timed next to the image runs
    make_weights(weights, pipe.unet)
    add_fewstep_figures(out, manager, size, steps, ours_seconds, progress)
    offered = manager.backend != "openvino"  # on OpenVINO the app offers Few-step mode as Fast instead
    if offered:
        progress("fast toggle: feature reuse")
        fast, fast_latent = run_ours(manager, size, steps, fast=True)
        out["fast"] = {"method": f"feature reuse (DeepCache), full UNet every {fastpath.FAST_INTERVAL} steps",
                   "offered_on_default_backend": offered,
                       "seconds": fast["seconds"], "cpu_seconds": fast["cpu_seconds"], "run": fast,
                       "speedup_vs_default": ours_seconds / fast["seconds"],
                       "speedup_vs_default_cpu_time": ours_cpu / fast["cpu_seconds"],
                       "latent_rel_error_vs_default": relative_error(fast_latent, latent_a),
                       "speedup_vs_torch_path": torch_seconds / fast["seconds"]}
        if fp32_latent is not None:
            out["fast"]["speedup_vs_plain_fp32"] = plain["seconds"] / fast["seconds"]
            out["fast"]["latent_rel_error_vs_fp32"] = relative_error(fast_latent, fp32_latent)
    progress("per-stage breakdown: default, few-step, fast")
    stages = out["stages"] = {}
    for name, req in (("default", image_request(size, steps)), ("fewstep", fewstep_request(manager, size)),
                      ("fast", fast_request(size, steps))):
        staged_image(manager, one_step(req), work / "warm")  # the path's compiled model in place, as when warm
        stages[name] = staged_image(manager, req, work / "stages", name)

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
    out["floor_ratio_cpu_time"] = ours_cpu / (steps * median(step_cpu))
    out["floor_ratio"] = ours_seconds / floor
    ov_times = backends.openvino_step(manager, pipe, size, settings.repeats)
    if ov_times:  # the default path's floor is OpenVINO's step; the torch figures above stay for comparison
        out["unet"]["openvino_step_s"] = median(ov_times)
        out["unet"]["openvino_step_times"] = ov_times
        out["unet"]["openvino_step_speedup_vs_torch"] = median(step_times) / median(ov_times)
        out["unet"]["openvino_floor_s"] = steps * median(ov_times)
        out["unet"]["torch_floor_ratio"] = torch_seconds / floor
        out["floor_ratio"] = ours_seconds / (steps * median(ov_times))
        del out["floor_ratio_cpu_time"]  # OpenVINO's threads are not all counted in this process's CPU time

    add_efficiency(out, pipe.vae, size, steps)

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

    # g. what the fast toggle was chosen over (feature reuse, where it is the toggle)
    if settings.alternatives and offered:
        progress("fast toggle alternatives")
        out["fast_alternatives"] = fast_alternatives(manager, size, steps, ours_seconds, latent_a)

    # h. switching tabs and samplers
    progress("switching")
    out["switching"] = switching(manager, pipe)
    out["tab_switch_ms"] = out["switching"]["tab_switch_ms"]
    out["scheduler_switch_ms"] = out["switching"]["scheduler_switch_ms"]

    progress("int8 against bf16 on OpenVINO (child process)")
    add_int8_figures(out, settings, steps)

    out["memory"]["rss_all_tabs_over_one_bf16"] = all_tabs / one
    out["rss_all_tabs_over_one"] = all_tabs / one
    try:
        add_int8_path(out, manager, settings, work, fp32_latent, progress)
    except Exception as exc:  # the figures before it still print
        out["int8_image"] = {"error": f"{type(exc).__name__}: {exc}"}
    fastest = min(("default", ours_seconds), ("int8", (out.get("int8_image") or {}).get("seconds") or float("inf")),
                  key=lambda pair: pair[1])
    out["fastest_20_step_path"] = fastest[0]
    if "error" not in plain:
        out["speedup_vs_plain_fp32"] = plain["seconds"] / fastest[1]
        out["ours"]["speedup_vs_plain_fp32"] = plain["seconds"] / ours_seconds

    progress("Text to video: Lightning 4-step clip against the 10-step clip (child process)")
    out["text2video"] = lightning_ratio(settings)
    out["cpu_pressure_end"] = cpu_pressure()
    return out


def one_step(req):
    """The same request at one step: a warm-up that puts the right compiled model in place."""
    from dataclasses import replace

    return replace(req, num_inference_steps=1)


def add_int8_path(out: dict, manager, settings: Settings, work: Path, fp32_latent, progress) -> None:
    """The int8 model on the manager: a 20-step image, its stages, and the memory of every tab with it in use."""
    if manager.openvino() is None:
        out["int8_image"] = {"error": "int8 runs on OpenVINO, which is not the back end here"}
        return
    size, steps = settings.size, settings.steps
    progress("int8 image through the engine (--precision int8)")
    swap = use_int8(manager)
    run_ours(manager, size, 1)  # compiles the int8 model for this size (from the disk cache)
    run, latent = run_ours(manager, size, steps)
    out["int8_image"] = {**swap, **run, "precision": manager.precision_used()}
    if fp32_latent is not None:
        out["int8_image"]["latent_rel_error"] = relative_error(latent, fp32_latent)
    out["stages"]["int8"] = staged_image(manager, image_request(size, steps), work / "stages", "int8")
    progress("memory: one image, then all tabs and a few-step image, int8 in use")
    figures = all_tabs_with_int8_and_fewstep(manager, size, settings.rss_steps, work / "tabs-int8",
                                             fewstep_request(manager, size))
    out["memory"]["int8_fewstep"] = figures
    out["rss_all_tabs_over_one"] = figures["rss_all_tabs_over_one"]


def lightning_ratio(settings: Settings) -> dict:
    """bench/text2video.py --lightning in a fresh process: the 4-step Lightning clip ÷ today's 10-step clip."""
    import subprocess

    frames = 16  # the clip; Text to video takes 8 to 32 frames
    command = [sys.executable, str(REPO / "bench" / "text2video.py"), "--lightning", "--size", "256",
               "--frames", str(frames), "--pace-steps", "1"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=3000, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"text2video.py --lightning failed (exit {proc.returncode}): {' | '.join(tail)}"}
    return json.loads(lines[-1])


# 6. output
def table(out: dict) -> str:
    lines = [f"Diffusion Studio benchmark: {out['machine']['cpu']}, {out['machine']['logical_cpus']} CPUs, "
             f"torch {out['machine']['torch']}, {out['settings']['size']}px, {out['settings']['steps']} steps"]
    lines += verdict_lines(out)
    lines.append("  per-stage seconds (text encoder, UNet, VAE, watermark, write, other):")
    lines += stage_lines(out.get("stages") or {})
    lines.append(f"  back end {out['backend']['default']}; torch path {out['torch_path']['seconds']:.1f} s/image")
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
    parser.add_argument("--partial", help="save the figures measured so far to this JSON file at every stage")
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

    out: dict = {}

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", file=sys.stderr, flush=True)
        if args.partial:
            Path(args.partial).write_text(json.dumps(rounded({**out, "partial_at": message}, 4), indent=1,
                                                     default=str))

    out = main_run(settings, progress, out)
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
