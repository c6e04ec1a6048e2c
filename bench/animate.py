"""Seconds per animated frame (Animate tab, 2D) at cadence 1 and 3, against one text-to-image picture.

    python bench/animate.py [--size 256] [--steps 10] [--frames 12] [--strength 0.65]

Runs on the full-size SD 1.5 architecture with random weights (presets/sd15), in the dtype the app picks for
this CPU; downloads nothing. Prints one JSON line. Compare numbers only within one run: shared machines drift.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def full_size_manager(**folders):
    """The app's PipelineManager over the full-size random SD 1.5 (built from configs, not loaded); `folders` are
    the manager's `lora_dir` and `embeddings_dir`."""
    from bench.common import full_size_class
    from engine.pipeline.manager import RuntimeOptions

    return full_size_class()("sd15-random", RuntimeOptions(device="cpu", backend="torch"), **folders)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--strength", type=float, default=0.65, help="Deforum strength: share of the frame kept")
    args = p.parse_args(argv)

    from engine.image.generate import text_to_image
    from engine.image.request import ImageRequest
    from engine.pipeline.devices import dtype_name
    from engine.video.animate import AnimateRequest, animate
    from engine.video.run_folder import RunPaths

    manager = full_size_manager()
    manager.base()
    common = dict(num_inference_steps=args.steps, width=args.size, height=args.size, sampler="DPM++ 2M Karras")
    text_to_image(manager, ImageRequest(prompt="warm-up", **common, seed=1))  # first call pays one-off costs
    start = time.perf_counter()
    text_to_image(manager, ImageRequest(prompt="a forest at dawn", **common, seed=2))
    one_image = time.perf_counter() - start
    results = {"size": args.size, "steps": args.steps, "frames": args.frames, "strength": args.strength,
               "dtype": dtype_name(manager.dtype), "threads": manager.threads, "one_image_s": round(one_image, 2)}
    with tempfile.TemporaryDirectory() as folder:
        for cadence in (1, 3):
            req = AnimateRequest(prompts={0: "a forest at dawn", args.frames // 2: "a desert at night"},
                                 num_frames=args.frames, cadence=cadence, strength=f"0:({args.strength})",
                                 zoom="0:(1.02)", seed=3, color_coherence="lab", **common)
            paths = RunPaths(frames=Path(folder) / f"c{cadence}-frames", video=Path(folder) / f"c{cadence}.mp4")
            start = time.perf_counter()
            result = animate(manager, req, paths)
            took = time.perf_counter() - start
            results[f"cadence_{cadence}"] = {"seconds": round(took, 2), "per_frame_s": round(took / args.frames, 2),
                                             "diffusions": result.diffusions,
                                             "frames_per_image_time": round(one_image / (took / args.frames), 2)}
            print(json.dumps(results), file=sys.stderr, flush=True)  # so far, in case the run is cut short
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
