"""`python -m engine text2video ...`: the Text to video tab from a shell."""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path


def add_parser(jobs, add_model_flags) -> None:
    """The `text2video` sub-command; sizes and frames left out take the device's defaults (256 px, 8 frames on CPU)."""
    from engine.video.motion.text2video import DEFAULT_SAMPLER, MAX_FRAMES, MIN_FRAMES

    p = jobs.add_parser("text2video", help="a short clip from a prompt with an AnimateDiff motion adapter, as an MP4")
    add_model_flags(p)
    p.add_argument("--prompt", default="")
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--frame-prompt", action="append", default=[],
                   help="'frame: prompt', once per change (e.g. '16: a dog running'); turns FreeNoise on")
    p.add_argument("--frames", type=int, default=None,
                   help=f"{MIN_FRAMES} to {MAX_FRAMES} (default: 8 on CPU, 16 on GPU)")
    p.add_argument("--fps", type=float, default=None, help="default 8 (a resumed clip keeps its own)")
    p.add_argument("--steps", type=int, default=None,
                   help="default: 10 on a CPU, 20 on a GPU; N with an AnimateDiff-Lightning N-step adapter")
    p.add_argument("--guidance", type=float, default=None, help="default 7.5; 1 with a Lightning adapter")
    p.add_argument("--seed", type=int, default=-1, help="-1 picks a random seed")
    p.add_argument("--scheduler", default=None,
                   help=f"an A1111 sampler name (default {DEFAULT_SAMPLER} with AnimateDiff's recommended settings; "
                        "Euler with trailing timesteps for a Lightning adapter)")
    p.add_argument("--width", type=int, default=None, help="default: 256 on CPU, 512 on GPU (128 for tiny)")
    p.add_argument("--height", type=int, default=None, help="default: 256 on CPU, 512 on GPU (128 for tiny)")
    p.add_argument("--free-noise", action="store_true", help="FreeNoise sliding windows: steadier past 16 frames")
    p.add_argument("--motion-adapter", default=None,
                   help="a folder or file under weights/ (or weights/motion/), or a hub id (default: the first "
                        "local one, else guoyww/animatediff-motion-adapter-v1-5-2); tiny models use a tiny one")
    p.add_argument("--gif", action="store_true", help="also write a GIF beside the MP4")
    p.add_argument("--fast-decode", action=argparse.BooleanOptionalAction, default=None,
                   help="decode the frames with TAESD, the tiny VAE (weights/taesd): about 16x cheaper than the VAE, "
                        "less fine detail; on by default with a Lightning adapter when TAESD is present (a resumed "
                        "clip keeps its own unless given)")
    p.add_argument("--out", default=None, help="MP4 to write; frames go to <name>-frames/ and settings to <name>.json")
    p.add_argument("--resume", metavar="RUN_FOLDER", default=None,
                   help="continue a stopped clip from its last saved step (its folder, or the .json beside its MP4); "
                        "settings given must match the clip's")


def run(args, make_manager, check_writable, cli_error) -> int:
    from engine.video.motion.text2video import defaults_for, defaults_with_adapter, text_to_video
    from engine.video.run_folder import RunPaths

    if args.resume:
        return resume(args, make_manager, cli_error)
    if not args.out:
        raise cli_error("python -m engine text2video: --out is required (or --resume RUN_FOLDER)")
    out = check_writable(Path(args.out))
    if out.suffix.lower() != ".mp4":
        raise cli_error(f"python -m engine text2video: --out must end in .mp4 (got {out.name})")
    manager = make_manager(args)
    start = defaults_with_adapter(defaults_for(manager.device, manager.defaults()), args.motion_adapter,
                                  taesd=manager.taesd_available())
    if args.fast_decode is None and start.fast_decode:
        print("Fast decode is on with the Lightning adapter: TAESD decodes the frames (--no-fast-decode for the "
              "model's VAE).", file=sys.stderr)
    req = replace(start, prompt=args.prompt, negative_prompt=args.negative_prompt,
                  frame_prompts="\n".join(args.frame_prompt), num_frames=args.frames or start.num_frames,
                  fps=args.fps or 8, num_inference_steps=args.steps or start.num_inference_steps,
                  guidance_scale=start.guidance_scale if args.guidance is None else args.guidance, seed=args.seed,
                  width=args.width or start.width, height=args.height or start.height,
                  sampler=args.scheduler or start.sampler, free_noise=args.free_noise, gif=args.gif,
                  fast_decode=start.fast_decode if args.fast_decode is None else args.fast_decode)
    paths = RunPaths(frames=out.with_name(f"{out.stem}-frames"), video=out)
    return report(args, text_to_video(manager, req, paths))


# the flags a resumed clip must keep, as the request's fields
KEPT_FLAGS = {"prompt": "prompt", "negative_prompt": "negative_prompt", "frames": "num_frames",
              "steps": "num_inference_steps", "guidance": "guidance_scale", "seed": "seed", "width": "width",
              "height": "height", "scheduler": "sampler", "motion_adapter": "motion_adapter"}


def resume(args, make_manager, cli_error) -> int:
    """`--resume RUN_FOLDER`: the clip's own settings, with any flag given checked against them."""
    from engine.video.motion.text2video import read_run, request_of, resume_text_to_video

    if args.out:
        raise cli_error("python -m engine text2video: --resume continues the clip in its own folder; leave out --out")
    _, plan = read_run(Path(args.resume))
    asked = request_of(plan)
    given = {field: getattr(args, flag) for flag, field in KEPT_FLAGS.items()
             if getattr(args, flag) not in (None, "", -1)}
    if args.frame_prompt:
        given["frame_prompts"] = "\n".join(args.frame_prompt)
    asked = replace(asked, **given, seed=given.get("seed", -1), fps=args.fps or asked.fps, gif=args.gif or asked.gif,
                    fast_decode=asked.fast_decode if args.fast_decode is None else args.fast_decode)
    return report(args, resume_text_to_video(make_manager(args), Path(args.resume), asked=asked))


def report(args, result) -> int:
    notes = list(result.notes)
    if args.fast:
        notes.insert(0, "--fast does not apply to text to video; it ran at the usual speed.")
    for note in notes:
        print(note, file=sys.stderr)
    print(f"{result.video}  {len(result.frames)} frames, seed {result.seed}, settings {result.settings}")
    return 0
