"""LoRAs on the full-size random SD 1.5 (PyTorch): the plain path's step before and after a LoRA request, the step
with a rank-64 LoRA active, and Few-step mode (LCM-LoRA, 4 steps, CFG 1) against 20 steps at CFG 7.

    python -m bench.lora [--size 512] [--repeats 3]

A LoRA's speed does not depend on its values, so random LoRAs of the real rank and layers stand in for the
published ones (LCM-LoRA SD 1.5: rank 64 on attention, feed-forward, resnet convs and time embeddings).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

from bench.animate import full_size_manager
from bench.common import (
    NEGATIVE,
    PROMPT,
    SEED,
    Clock,
    cpu_pressure,
    machine,
    median,
    memory,
    rounded,
    settle,
    time_unet,
    unet_inputs,
)

LCM_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1",
               "conv2", "conv_shortcut", "downsamplers.0.conv", "upsamplers.0.conv", "time_emb_proj")


def random_lora(unet, rank: int = 64, targets: tuple[str, ...] = LCM_TARGETS) -> dict:
    """diffusers-format LoRA tensors (lora_A/lora_B) for every target layer, at `rank`."""
    tensors = {}
    g = torch.Generator().manual_seed(0)
    for name, module in unet.named_modules():
        if not name.endswith(targets):
            continue
        if isinstance(module, torch.nn.Linear):
            a = torch.randn(rank, module.in_features, generator=g)
            b = torch.randn(module.out_features, rank, generator=g)
        elif isinstance(module, torch.nn.Conv2d):
            a = torch.randn(rank, module.in_channels, *module.kernel_size, generator=g)
            b = torch.randn(module.out_channels, rank, 1, 1, generator=g)
        else:
            continue
        tensors[f"unet.{name}.lora_A.weight"] = a * 1e-3
        tensors[f"unet.{name}.lora_B.weight"] = b * 1e-3
    return tensors


def say(report: dict, key: str, value) -> None:
    """Keep a figure and print it at once, so a long run shows its progress."""
    report[key] = value
    print(json.dumps({key: rounded(value)}), file=sys.stderr, flush=True)


def step_times(manager, size: int, repeats: int, prompt: str) -> dict:
    """Bare guided UNet calls inside a job carrying the prompt's LoRAs (none for a plain prompt)."""
    with manager.lora_scope(prompt):
        pipe = manager.base()
        latent, context = unet_inputs(pipe, size)
        cpu: list[float] = []
        times = time_unet(pipe.unet, latent, context, repeats, cpu=cpu)
        layers = sum(1 for n, _ in pipe.unet.named_modules() if "lora_A" in n)
    return {"step_median_s": median(times), "step_cpu_median_s": median(cpu), "lora_layers": layers}


def image_seconds(manager, size: int, steps: int, guidance: float, sampler: str, prompt: str) -> dict:
    from engine.image.generate import text_to_image
    from engine.image.request import ImageRequest

    req = ImageRequest(prompt=prompt, negative_prompt=NEGATIVE, num_inference_steps=steps, guidance_scale=guidance,
                       width=size, height=size, seed=SEED, sampler=sampler)
    with Clock() as clock:
        text_to_image(manager, req)
    settle()
    return {"seconds": clock.wall, "cpu_seconds": clock.cpu, "steps": steps, "cfg": guidance, "sampler": sampler}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-images", action="store_true", help="only the step timings")
    args = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="bench-lora-"))
    manager = full_size_manager(lora_dir=folder)
    with Clock() as build:
        pipe = manager.base()
    from safetensors.torch import save_file

    tensors = random_lora(pipe.unet)
    save_file(tensors, str(folder / "lcm-lora-sdv1-5.safetensors"))
    lcm = f"{PROMPT} <lora:lcm-lora-sdv1-5:1>"
    report: dict = {"machine": machine(), "size": args.size, "dtype": str(manager.dtype), "build_s": build.wall,
                    "lora_file_mb": (folder / "lcm-lora-sdv1-5.safetensors").stat().st_size / 2**20,
                    "lora_layers_targeted": len(tensors) // 2, "pressure_before": cpu_pressure()}

    # 1. the plain path's step: before any LoRA, with one active, and after the switch back
    say(report, "step_plain_before", step_times(manager, args.size, args.repeats, PROMPT))
    with Clock() as switch_on:
        with manager.lora_scope(lcm):
            pass
    say(report, "switch_to_lora_s", switch_on.wall)
    say(report, "step_with_lora", step_times(manager, args.size, args.repeats, lcm))
    with Clock() as switch_off:
        with manager.lora_scope(PROMPT):
            pass
    say(report, "switch_back_s", switch_off.wall)
    say(report, "step_plain_after", step_times(manager, args.size, args.repeats, PROMPT))
    report["memory_after_steps"] = memory()

    # 2. Few-step mode against the usual 20 steps
    if not args.skip_images:
        say(report, "image_20_steps", image_seconds(manager, args.size, 20, 7.0, "DPM++ 2M Karras", PROMPT))
        say(report, "image_few_step_lcm", image_seconds(manager, args.size, 4, 1.0, "LCM", lcm))
        say(report, "image_few_step_lcm_again", image_seconds(manager, args.size, 4, 1.0, "LCM", lcm))
        report["speedup"] = report["image_20_steps"]["seconds"] / report["image_few_step_lcm_again"]["seconds"]
    report["pressure_after"] = cpu_pressure()
    print(json.dumps(rounded(report), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
