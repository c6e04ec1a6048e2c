"""DreamBooth on the full-size SD 1.5 architecture (random weights): seconds a step, peak RSS, the recipe's minutes.

The LoRA at 256 and 512 px and, with --full, Full DreamBooth.

    python -m bench.train [--sizes 256 512] [--steps 3] [--dtype auto] [--text-encoder] [--full [SIZE ...]]

Random weights train as fast as real ones, so this is what a real training costs here. The first step (warm-up,
allocator growth) is reported apart; the median of the rest is the figure, and the default recipe's minutes
(400 steps for 3-4 photos, 1,500 at most) follow from it. Full DreamBooth runs on the CPU here only to be
measured (the app asks for a 16 GB GPU); it is skipped when the free memory can't hold its ~17 GB.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import cpu_pressure, full_size_class, machine, median, memory, reset_peak, rounded, settle


def photos(folder: Path, size: int, count: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


FULL_MARGIN_GB = 2


def available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def full_needs_gb(manager) -> float:
    """Full DreamBooth on the CPU: the fp32 UNet copy, its gradients and AdamW's two moments, plus ~3 GB more."""
    return sum(p.numel() for p in manager.base().unet.parameters()) * 16 / 2**30 + 3


def measure(manager, tmp: Path, size: int, steps: int, text_encoder: bool, full: bool) -> dict:
    """One training of `steps` steps at `size`: seconds a step, peak RSS and the default recipe's minutes."""
    from engine.train.full import FULL_UNET_LR, train_full
    from engine.train.loop import train_lora
    from engine.train.request import MAX_STEPS, TrainRequest, default_steps

    settle()
    figures = {"kind": "full" if full else "lora", "size": size, "rss_before_gb": memory()["rss_gb"]}
    reset_peak()
    folder = tmp / f"in-{size}"
    folder.mkdir(exist_ok=True)
    name = f"bench{size}{'full' if full else ''}"
    req = TrainRequest(str(photos(folder, size)), name, class_word="object", steps=steps, resolution=size,
                       sample_every=0, sample_steps=1, text_encoder=text_encoder, checkpoint_every=10_000,
                       overwrite=True, **({"unet_lr": FULL_UNET_LR} if full else {}))
    if full:
        result = train_full(manager, req, root=tmp / "runs", check_device=False)
    else:
        result = train_lora(manager, req, root=tmp / "runs")
    rows = (result.run_dir / "loss.csv").read_text().splitlines()[1:]
    step_seconds = [float(r.split(",")[3]) for r in rows]
    per = median(step_seconds[1:] or step_seconds)
    recipe = default_steps(4)  # 4 photos, the person recipe: 100 steps a photo, at least 400
    figures.update(first_step_s=step_seconds[0], step_median_s=per, peak_rss_gb=memory()["peak_gb"],
                   pressure=cpu_pressure(), default_recipe_min={f"{recipe} steps": per * recipe / 60,
                                                                f"{MAX_STEPS} steps": per * MAX_STEPS / 60})
    return figures


def main(argv=None) -> int:
    from engine.pipeline.manager import RuntimeOptions

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[256, 512], help="training sizes for the LoRA steps")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--dtype", default="auto", help="auto (bf16 on CPUs with bf16, fp16 on CUDA), float32, ...")
    p.add_argument("--device", default="cpu")
    p.add_argument("--text-encoder", action="store_true")
    p.add_argument("--full", type=int, nargs="*", default=None, metavar="SIZE",
                   help="also time Full DreamBooth steps at these sizes (default 256), if the memory is free")
    args = p.parse_args(argv)

    report = {"machine": machine(), "steps": args.steps, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manager = full_size_class()("sd15-random", RuntimeOptions(device=args.device, dtype=args.dtype,
                                                                  backend="torch"),
                                    weights_dir=tmp / "weights", lora_dir=tmp / "Lora")
        started = time.perf_counter()
        manager.base()
        report["build_s"] = time.perf_counter() - started
        report["dtype"] = str(manager.dtype).removeprefix("torch.")
        for size in args.sizes:
            report["runs"].append(measure(manager, tmp, size, args.steps, args.text_encoder, full=False))
            print(json.dumps(rounded(report["runs"][-1])), file=sys.stderr, flush=True)
        for size in [] if args.full is None else (args.full or [256]):
            needed, free = full_needs_gb(manager), available_gb()
            if free < needed + FULL_MARGIN_GB:  # a shared machine: leave the others room
                report["runs"].append({"kind": "full", "size": size, "skipped": f"needs about {needed:.0f} GB, "
                                                                                 f"{free:.0f} GB available"})
                continue
            report["runs"].append(measure(manager, tmp, size, args.steps, args.text_encoder, full=True))
            print(json.dumps(rounded(report["runs"][-1])), file=sys.stderr, flush=True)
    print(json.dumps(rounded(report), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
