"""Training on the full-size SD 1.5 architecture (random weights): seconds per DreamBooth LoRA step and peak RSS.

    python -m bench.train [--size 256] [--steps 3] [--dtype auto] [--text-encoder]

Random weights train as fast as real ones, so this is what a real training costs here. The first step (warm-up,
allocator growth) is reported apart; the median of the rest is the figure, and the default recipe's minutes
(400 steps for 3-4 photos, 1,500 at most) follow from it.
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


def main(argv=None) -> int:
    from engine.pipeline.manager import RuntimeOptions
    from engine.train.loop import train_lora
    from engine.train.request import MAX_STEPS, MIN_STEPS, TrainRequest

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--dtype", default="auto", help="auto (bf16 on CPUs with bf16, fp16 on CUDA), float32, ...")
    p.add_argument("--device", default="cpu")
    p.add_argument("--text-encoder", action="store_true")
    args = p.parse_args(argv)

    report = {"machine": machine(), "size": args.size, "steps": args.steps}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manager = full_size_class()("sd15-random", RuntimeOptions(device=args.device, dtype=args.dtype,
                                                                  backend="torch"), lora_dir=tmp / "Lora")
        started = time.perf_counter()
        manager.base()
        report["build_s"] = time.perf_counter() - started
        report["dtype"] = str(manager.dtype).removeprefix("torch.")
        settle()
        report["rss_before_gb"] = memory()["rss_gb"]
        reset_peak()
        stamps = []
        (tmp / "in").mkdir()
        req = TrainRequest(str(photos(tmp / "in", args.size)), "bench",
                           class_word="object", steps=args.steps, resolution=args.size, sample_every=0,
                           sample_steps=1, text_encoder=args.text_encoder, checkpoint_every=10_000)
        result = train_lora(manager, req, on_progress=lambda pr: stamps.append(time.perf_counter()),
                            root=tmp / "runs")
        rows = (result.run_dir / "loss.csv").read_text().splitlines()[1:]
        step_seconds = [float(r.split(",")[3]) for r in rows]
        report.update(first_step_s=step_seconds[0], step_median_s=median(step_seconds[1:] or step_seconds),
                      peak_rss_gb=memory()["peak_gb"], pressure=cpu_pressure())
        per = report["step_median_s"]
        report["default_recipe_min"] = {"400 steps": per * MIN_STEPS / 60, "1500 steps": per * MAX_STEPS / 60}
    print(json.dumps(rounded(report), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
