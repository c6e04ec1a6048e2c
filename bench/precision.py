"""int8 against bf16 on OpenVINO: one UNet step of the full-size random SD 1.5 at each size, each path's error
against PyTorch fp32 (after one step, and on the final latent of a short guided Euler run), and the machine's bf16
and int8 matmul peaks the steps are compared with."""
from __future__ import annotations

import copy
import os
import tempfile
import time
from pathlib import Path

import torch

from bench.common import Clock, median, relative_error, settle, time_unet, unet_flops, unet_inputs

PEAK_SIDE = 2048  # matmul side for the peaks
PEAK_THREADS = 2  # the peaks are taken on 2 threads, as the machine's share is
TRAJECTORY_STEPS = 8  # Euler steps of the run whose final latent `int8_latent_rel_error` compares
GUIDANCE = 7.0


def final_latent(unet, pipe, context, side: int, steps: int = TRAJECTORY_STEPS) -> torch.Tensor:
    """The last latent of a guided Euler run from fixed noise: what a sampler makes of each step's error."""
    import diffusers

    scheduler = diffusers.EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(7)
    latent = torch.randn(1, 4, side, side, generator=generator) * scheduler.init_noise_sigma
    with torch.no_grad():
        for t in scheduler.timesteps:
            noise = unet(scheduler.scale_model_input(torch.cat([latent, latent]), t), t,
                         encoder_hidden_states=context).sample.float()
            negative, positive = noise.chunk(2)
            latent = scheduler.step(negative + GUIDANCE * (positive - negative), t, latent).prev_sample
    return latent


def matmul_peaks(n: int = PEAK_SIDE, threads: int = PEAK_THREADS, repeats: int = 5) -> dict:
    """Best TFLOP/s (bf16) and TOP/s (int8, `torch._int_mm`) of an n x n matmul on `threads` threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        pairs = {"bf16": (torch.randn(n, n, dtype=torch.bfloat16), torch.randn(n, n, dtype=torch.bfloat16)),
                 "int8": (torch.randint(-128, 127, (n, n), dtype=torch.int8),
                          torch.randint(-128, 127, (n, n), dtype=torch.int8))}
        ops = {"bf16": torch.matmul, "int8": torch._int_mm}
        out = {}
        for name, (a, b) in pairs.items():
            ops[name](a, b)
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                ops[name](a, b)
                best = min(best, time.perf_counter() - start)
            out[name] = 2 * n**3 / best / 1e12
        return out
    finally:
        torch.set_num_threads(before)


def child_int8(args) -> dict:
    """Convert SD 1.5 (random weights) to OpenVINO bf16 and to int8 (calibrated as the app does), then time a guided
    UNet step of each at the run's size (and 256 px), with each one's error against PyTorch fp32."""
    from engine.backends import int8
    from engine.backends.openvino import OpenVINOUNetRunner, Shape
    from engine.pipeline.components import SD15_CONFIG_DIR, build_from_configs
    from engine.pipeline.devices import pick_dtype

    folder = Path(os.environ.get("STUDIO_OPENVINO_CACHE") or tempfile.mkdtemp(prefix="ds-int8-"))
    dtype = pick_dtype("cpu")
    pipe = build_from_configs(SD15_CONFIG_DIR, dtype=dtype)
    pipe.unet.to(memory_format=torch.channels_last)
    sizes = sorted({256, args.size})
    out: dict = {"matmul_peaks_tops": matmul_peaks(), "sizes": {}, "dtype": str(dtype).replace("torch.", "")}
    peaks = out["matmul_peaks_tops"]
    # 1. PyTorch fp32 reference outputs and each size's FLOPs (meta device)
    inputs, reference, flops = {}, {}, {}
    fp32 = copy.deepcopy(pipe.unet).to(torch.float32)
    with torch.no_grad():
        for size in sizes:
            latent, context = unet_inputs(pipe, size)
            inputs[size] = (latent.float(), context.float())
            reference[size] = fp32(latent.float(), 500, encoder_hidden_states=context.float()).sample
            with torch.device("meta"):
                meta = copy.deepcopy(fp32).to("meta")
            flops[size] = unet_flops(meta, latent.float().to("meta"), context.float().to("meta"))["total"]
        top_size = max(sizes)
        final_reference = final_latent(fp32, pipe, inputs[top_size][1], top_size // 8)
    del fp32, meta
    settle()
    # 2. each precision: prepare (timed), then step times and error at each size
    precisions = {}
    for name in ("bf16", "int8"):
        runner = OpenVINOUNetRunner(pipe.unet, precision="bf16" if dtype == torch.bfloat16 else "f32",
                                    cache_dir=folder, background=False, max_shapes=len(sizes), int8=name == "int8",
                                    calibration=lambda: int8.record_unet_inputs(pipe.components))
        with Clock() as clock:
            for size in sizes:
                runner.prepare(Shape(2, size // 8, size // 8, 77, 4))
        result = {"prepare_s": clock.wall, **{k: v for k, v in runner.timings.items()}}
        view = runner.view(pipe.unet)
        for size in sizes:
            latent, context = inputs[size]
            with torch.no_grad():
                got = view(latent, 500, context).sample
            times = time_unet(view, latent, context, args.repeats)
            step = median(times)
            peak = peaks["int8" if name == "int8" else "bf16"]
            result[str(size)] = {"step_s": step, "step_times": times, "latent_rel_error": relative_error(got, reference[size]),
                                 "flops_per_step": flops[size],
                                 "efficiency": flops[size] / (peak * 1e12) / step}
        result["final_latent_rel_error"] = relative_error(
            final_latent(view, pipe, inputs[top_size][1], top_size // 8), final_reference)
        assert view.torch_calls == 0, "a timed step fell back to PyTorch"
        precisions[name] = result
        del runner, view
        settle()
    out["precisions"] = precisions
    for size in sizes:
        bf16, q = precisions["bf16"][str(size)], precisions["int8"][str(size)]
        out["sizes"][str(size)] = {"int8_speedup_vs_bf16": bf16["step_s"] / q["step_s"],
                                   "int8_step_rel_error": q["latent_rel_error"],
                                   "bf16_step_rel_error": bf16["latent_rel_error"]}
    top = str(top_size)
    out["int8_speedup_vs_bf16"] = out["sizes"][top]["int8_speedup_vs_bf16"]
    out["int8_step_rel_error"] = out["sizes"][top]["int8_step_rel_error"]  # one UNet output against fp32's
    # the final latent of TRAJECTORY_STEPS guided Euler steps against fp32's, at the top size
    out["int8_latent_rel_error"] = precisions["int8"]["final_latent_rel_error"]
    out["bf16_latent_rel_error"] = precisions["bf16"]["final_latent_rel_error"]
    out["trajectory_steps"] = TRAJECTORY_STEPS
    out["size"] = int(top)
    return out


def add_int8_figures(out: dict, settings, steps: int) -> dict:
    """Put the int8 child's figures, the 2048² peaks and each path's `efficiency` (the UNet's FLOP floor at the bf16
    peak over the measured image) into the main run's output; returns the child's output."""
    from bench.common import child

    figures = child("int8", settings, timeout=3600)
    out["int8"] = figures
    peaks = figures.get("matmul_peaks_tops") or matmul_peaks()
    out["matmul_peaks_2048_2_threads_tops"] = peaks
    for key in ("int8_speedup_vs_bf16", "int8_latent_rel_error"):
        if key in figures:
            out[key] = figures[key]
    flops = (out.get("unet") or {}).get("flops_per_step")
    if flops:
        floor = steps * flops / (peaks["bf16"] * 1e12)
        out["unet"]["flop_floor_s"] = floor
        for name in ("ours", "torch_path"):
            if (out.get(name) or {}).get("seconds"):
                out[name]["efficiency"] = floor / out[name]["seconds"]
        if "efficiency" in out.get("ours", {}):
            out["efficiency"] = out["ours"]["efficiency"]
    return figures
