"""Text to video: resident memory with and without the motion tab, and seconds a frame, on full-size SD 1.5.

    python bench/text2video.py [--size 256] [--steps 2] [--frames 8]

Builds SD 1.5 from presets/sd15 and a motion adapter from presets/motion/v1-5-2 (the hub default's config), both
with random weights, in the dtype the app picks for this CPU; downloads nothing. Prints one JSON line:
- `rss_without_gb`: the model loaded and one text-to-image run done (what the other tabs hold);
- `rss_with_gb`, `peak_gb`: after a text-to-video run on the same manager, and the peak during it;
- `adapter_gb`: the motion adapter's own weights, the only weights the motion tab adds;
- `unet_copy_avoided_gb`: what `UNetMotionModel.from_unet2d` would have copied (the SD UNet's 2D weights);
- `seconds_per_step`, `seconds_per_frame`: denoising only (all frames together, CFG on), and the whole run a frame.
- with `--lightning`, `lightning_over_default`: a clip on a 4-step AnimateDiff-Lightning adapter (Euler trailing,
  CFG 1, 4 steps) ÷ today's default clip (DDIM, CFG 7.5, 10 steps), both 16 frames at 256² by default (target ≤ 0.3).
  The Lightning adapter has v1-5-2's architecture, so random weights of that shape time it. `--pace-steps K` times
  K steps of each and the decode, and scales the steps to the whole clips (for a busy 2-core machine).
Compare numbers only within one run: shared machines drift.
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

from bench.animate import full_size_manager  # noqa: E402
from bench.common import memory, reset_peak, settle  # noqa: E402


def gib(module) -> float:
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers())) / 2**30


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--lightning", action="store_true", help="only the Lightning ÷ default clip ratio")
    parser.add_argument("--pace-steps", type=int, default=None, help="time this many steps a clip and scale up")
    args = parser.parse_args(argv)
    if args.lightning:
        return lightning_ratio(args)

    import torch
    from diffusers import MotionAdapter

    from engine.cli import quiet_libraries
    from engine.image.generate import text_to_image
    from engine.image.request import ImageRequest
    from engine.video.motion import adapter as motion_adapter
    from engine.video.motion.text2video import Text2VideoRequest, text_to_video
    from engine.video.run_folder import RunPaths

    quiet_libraries()
    out = {"size": args.size, "steps": args.steps, "frames": args.frames, "threads": torch.get_num_threads()}
    # 1. without the motion tab: the model and one picture
    manager = full_size_manager()
    base = manager.base()
    out["dtype"] = str(manager.dtype).replace("torch.", "")
    text_to_image(manager, ImageRequest(prompt="a fox in the snow", num_inference_steps=args.steps, width=args.size,
                                        height=args.size, seed=1))
    settle()
    out["rss_without_gb"] = round(memory()["rss_gb"], 2)

    # 2. with it: a random adapter of the hub default's shape, held as that adapter would be
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        adapter = MotionAdapter.from_config(MotionAdapter.load_config(motion_adapter.MOTION_PRESETS / "v1-5-2"))
    adapter = (adapter if adapter.dtype == manager.dtype else adapter.to(manager.dtype)).eval().requires_grad_(False)
    source = motion_adapter.resolve_adapter(str(motion_adapter.MOTION_PRESETS / "v1-5-2"), manager.model_name,
                                            manager.weights_dir)
    motion_adapter.hold_adapter(base.unet, source, adapter)
    out["adapter_gb"] = round(gib(adapter), 2)
    out["unet_copy_avoided_gb"] = round(gib(base.unet), 2)
    settle()
    reset_peak()
    req = Text2VideoRequest(prompt="a fox walking in the snow", num_frames=args.frames, num_inference_steps=args.steps,
                            width=args.size, height=args.size, seed=1, motion_adapter=source.location)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = text_to_video(manager, req, RunPaths.in_folder(Path(folder), "clip"))
        took = time.perf_counter() - started
    settle()
    now = memory()
    out.update(rss_with_gb=round(now["rss_gb"], 2), peak_gb=round(now["peak_gb"], 2),
               seconds_per_step=round(result.seconds_per_step, 2),
               seconds_per_frame=round(took / args.frames, 2),
               seconds_per_frame_step=round(result.seconds_per_step / args.frames, 3),
               step_cost=float(f"{result.seconds_per_step / (args.frames * args.size ** 2 * 2):.3g}"))
    print(json.dumps(out))
    return 0


def lightning_ratio(args) -> int:
    """A 4-step Lightning clip ÷ the default 10-step clip, on one manager, in one run."""
    import torch
    from diffusers import MotionAdapter

    from engine.cli import quiet_libraries
    from engine.video.motion import adapter as motion_adapter
    from engine.video.motion.text2video import Text2VideoRequest, defaults_with_adapter, text_to_video
    from engine.video.run_folder import RunPaths

    quiet_libraries()
    frames = args.frames if args.frames != 8 else 16
    manager = full_size_manager()
    base = manager.base()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        adapter = MotionAdapter.from_config(MotionAdapter.load_config(motion_adapter.MOTION_PRESETS / "v1-5-2"))
    adapter = (adapter if adapter.dtype == manager.dtype else adapter.to(manager.dtype)).eval().requires_grad_(False)
    out = {"size": args.size, "frames": frames, "threads": torch.get_num_threads(),
           "dtype": str(manager.dtype).replace("torch.", ""), "pace_steps": args.pace_steps}
    with tempfile.TemporaryDirectory() as folder:
        lightning_dir = Path(folder) / "animatediff_lightning_4step_diffusers"
        lightning_dir.mkdir()
        (lightning_dir / "config.json").write_text((motion_adapter.MOTION_PRESETS / "v1-5-2" / "config.json").read_text())
        plain = Text2VideoRequest(prompt="a fox walking in the snow", num_frames=frames, num_inference_steps=10,
                                  width=args.size, height=args.size, seed=1)
        fast = defaults_with_adapter(plain, str(lightning_dir))
        for name, req, location in (("default", plain, str(motion_adapter.MOTION_PRESETS / "v1-5-2")),
                                    ("lightning", fast, str(lightning_dir))):
            source = motion_adapter.resolve_adapter(location, manager.model_name, manager.weights_dir)
            motion_adapter.hold_adapter(base.unet, source, adapter)
            steps = req.num_inference_steps
            timed = req if not args.pace_steps else Text2VideoRequest(**{**req.__dict__, "num_inference_steps":
                                                                           min(args.pace_steps, steps)})
            started = time.perf_counter()
            result = text_to_video(manager, replace_adapter(timed, location), RunPaths.in_folder(Path(folder) / name,
                                                                                                 name))
            took = time.perf_counter() - started
            per_step = result.seconds_per_step
            rest = took - per_step * timed.num_inference_steps  # text encoder, decode, write
            out[f"{name}_steps"] = steps
            out[f"{name}_seconds_per_step"] = round(per_step, 2)
            out[f"{name}_other_s"] = round(max(rest, 0.0), 2)
            out[f"{name}_clip_s"] = round(per_step * steps + max(rest, 0.0), 1)
    out["lightning_over_default"] = round(out["lightning_clip_s"] / out["default_clip_s"], 3)
    print(json.dumps(out))
    return 0


def replace_adapter(req, location: str):
    from dataclasses import replace

    return replace(req, motion_adapter=location)


if __name__ == "__main__":
    sys.exit(main())
