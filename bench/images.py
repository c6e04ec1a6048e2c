"""Images: plain fp32, the allocators, torch.compile, the fast toggle's alternatives, and switching."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from bench.common import (
    GUIDANCE,
    LIB_DIRS,
    NEGATIVE,
    PRELOADS,
    PROMPT,
    SAMPLER,
    SEED,
    Clock,
    Settings,
    child,
    median,
    memory,
    relative_error,
    run_ours,
    settle,
    step_report,
    time_unet,
    unet_inputs,
)


def child_plain_fp32(args) -> dict:
    """What a user gets by default: diffusers' StableDiffusionPipeline in fp32, default attention, DPM++ 2M Karras."""
    from diffusers import DPMSolverMultistepScheduler

    from engine.pipeline.components import SD15_CONFIG_DIR, build_from_configs

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


def child_allocator(args) -> dict:
    """Time UNet steps and a short pipeline under whichever allocator this process was started with."""
    from engine.backends import fastpath
    from engine.pipeline.components import SD15_CONFIG_DIR, build_from_configs
    from engine.pipeline.devices import pick_dtype
    from engine.pipeline.schedulers import make_scheduler

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
    from engine.backends import fastpath
    from engine.pipeline.components import SD15_CONFIG_DIR, build_from_configs
    from engine.pipeline.devices import pick_dtype

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
    from engine.pipeline.schedulers import make_scheduler, sampler_names

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

