#!/usr/bin/env python3
"""What A1111 prompt weighting and Hires. fix cost, on the full-size SD 1.5 architecture with random weights.

    python bench/prompting.py [--quick] [--json]

1. Prompt encoding: a plain prompt against the same words with weights (same tokens), runs interleaved.
2. Hires. fix: an image drawn at half the size and redrawn at the full size (Latent, strength 0.5, half the steps
   in each pass), against the same image drawn at the full size directly with all the steps.
PyTorch back end, the dtype the app picks for this CPU. Full run: 512 px, 20 steps (about 5 minutes);
--quick: 256 px, 6 steps. The machine is shared: compare the ratios, not the seconds. Never part of the test run.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.common import NEGATIVE, PROMPT, SAMPLER, SEED, Clock, cpu_pressure, machine, median, rounded  # noqa: E402

WEIGHTED = "a (photo:1.2) of an ((astronaut)) riding a [horse] on the moon, (detailed:0.8), sharp focus"


def time_encoding(manager, repeats: int) -> dict:
    """Milliseconds to encode the plain and the weighted prompt (with the negative prompt), interleaved."""
    from engine.text.prompts import encode_prompt_pair

    base = manager.base()
    wall: dict[str, list[float]] = {PROMPT: [], WEIGHTED: []}
    cpu: dict[str, list[float]] = {PROMPT: [], WEIGHTED: []}
    for _ in range(repeats + 1):
        for prompt in (PROMPT, WEIGHTED):
            with Clock() as clock:
                encode_prompt_pair(base.tokenizer, base.text_encoder, prompt, NEGATIVE, manager.dtype)
            wall[prompt].append(clock.wall * 1000)
            cpu[prompt].append(clock.cpu * 1000)
    figures = {}
    for name, times in (("wall", wall), ("cpu", cpu)):  # CPU time is less hurt by other users of the machine
        plain, weighted = median(times[PROMPT][1:]), median(times[WEIGHTED][1:])
        figures.update({f"plain_{name}_ms": rounded(plain, 1), f"weighted_{name}_ms": rounded(weighted, 1),
                        f"weighted_over_plain_{name}": rounded(weighted / plain)})
    return figures


def time_hires(manager, size: int, steps: int) -> dict:
    """Seconds for a direct image at `size` against Hires. fix from size/2 with steps/2 + steps/2."""
    from engine.image.generate import text_to_image
    from engine.image.request import ImageRequest

    common = dict(prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED, sampler=SAMPLER)
    direct = ImageRequest(**common, width=size, height=size, num_inference_steps=steps)
    hires = ImageRequest(**common, width=size // 2, height=size // 2, num_inference_steps=steps // 2,
                         hires_scale=2, hires_steps=steps // 2, hires_strength=0.5)
    text_to_image(manager, ImageRequest(**common, width=size // 2, height=size // 2, num_inference_steps=1))  # warm
    with Clock() as direct_clock:
        text_to_image(manager, direct)
    with Clock() as hires_clock:
        made = text_to_image(manager, hires).images[0].image
    assert made.size == (size, size)
    return {"size": size, "steps": steps, "direct_s": rounded(direct_clock.wall, 1),
            "hires_s": rounded(hires_clock.wall, 1), "hires_over_direct": rounded(hires_clock.wall / direct_clock.wall),
            "hires_over_direct_cpu": rounded(hires_clock.cpu / direct_clock.cpu)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 px, 6 steps")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    from bench.common import bench_manager

    manager = bench_manager()
    manager.options.backend = "torch"
    manager.base()
    report = {"machine": machine(), "dtype": str(manager.dtype), "pressure_before": cpu_pressure(),
              "encoding": time_encoding(manager, 5 if args.quick else 9),
              "hires": time_hires(manager, 256 if args.quick else 512, 6 if args.quick else 20),
              "pressure_after": cpu_pressure()}
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for section in ("encoding", "hires"):
            print(section, "  ".join(f"{k}={v}" for k, v in report[section].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
