"""Back ends: OpenVINO's warm-up (first time, and from the disk cache in a fresh process), today's PyTorch path on
the same manager for comparison, and the UNet step on each."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import torch

from bench.common import Clock, child, memory, settle, unet_inputs

CACHE_ENV = "STUDIO_OPENVINO_CACHE"


def use_fresh_cache(folder: Path) -> Path:
    """Point OpenVINO's disk cache at an empty folder, so the first warm-up really converts."""
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[CACHE_ENV] = str(folder)
    return folder


def shape_for(pipe, size: int, batch: int = 2):
    from engine.backends.openvino import Shape

    return Shape(batch, size // 8, size // 8, 77, pipe.unet.config.in_channels)


def warm_up(manager, pipe, size: int) -> dict:
    """Convert and compile the default path's model for a guided `size` image, as a first-ever use pays."""
    runner = manager.openvino()
    if runner is None:
        return {"error": manager.backend_choice.reason if manager.backend_choice else "OpenVINO not chosen"}
    with Clock() as clock:
        runner.prepare(shape_for(pipe, size))
    settle()
    after = memory()
    return {"seconds": clock.wall, "convert_s": runner.timings.get("convert_s"),
            "compile_s": runner.timings.get("compile_s"), "conversions": runner.conversions,
            "torch_file_backed": runner.torch_file_backed, "rss_gb": after["rss_gb"],
            "rss_anon_file_gb": [after.get("rss_anon_gb"), after.get("rss_file_gb")]}


def from_cache(settings, folder: Path) -> dict:
    """The same warm-up in a fresh process over the filled disk cache: what a restart pays."""
    return child("openvino_cache", settings, extra_env={CACHE_ENV: str(folder)})


def child_openvino_cache(args) -> dict:
    """Build the model as the app does, then time OpenVINO's preparation of one size from the disk cache."""
    from engine.backends.openvino import OpenVINOUNetRunner
    from engine.pipeline.components import SD15_CONFIG_DIR, build_from_configs
    from engine.pipeline.devices import pick_dtype

    dtype = pick_dtype("cpu")
    pipe = build_from_configs(SD15_CONFIG_DIR, dtype=dtype)
    pipe.unet.to(memory_format=torch.channels_last)
    settle()
    before = memory()["rss_gb"]
    runner = OpenVINOUNetRunner(pipe.unet, precision="bf16" if dtype == torch.bfloat16 else "f32",
                                background=False)
    with Clock() as clock:
        runner.prepare(shape_for(pipe, args.size))
    settle()
    after = memory()
    return {"seconds": clock.wall, "conversions": runner.conversions, "cache_loads": runner.cache_loads,
            "torch_file_backed": runner.torch_file_backed, "rss_before_gb": before, "rss_after_gb": after["rss_gb"],
            "rss_after_anon_file_gb": [after.get("rss_anon_gb"), after.get("rss_file_gb")]}


@contextmanager
def torch_path(manager):
    """Today's PyTorch default path on the same manager and weights: OpenVINO set aside for the block."""
    from engine import backends

    runner, choice = manager._openvino, manager.backend_choice
    manager._openvino = None
    manager.backend_choice = backends.Choice("torch", "PyTorch (bench: OpenVINO set aside)")
    try:
        yield
    finally:
        manager._openvino, manager.backend_choice = runner, choice


def openvino_step(manager, pipe, size: int, repeats: int) -> list[float] | None:
    """Wall seconds of guided UNet steps through the OpenVINO view, or None when OpenVINO is not in use."""
    from bench.common import time_unet

    runner = manager.openvino()
    if runner is None:
        return None
    latent, context = unet_inputs(pipe, size)
    return time_unet(runner.view(pipe.unet), latent, context, repeats)
