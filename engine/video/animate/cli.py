"""`python -m engine animate ...`: the Animate tab from a shell. Flags beside --settings override the file's values."""
from __future__ import annotations

import re
import sys
from dataclasses import replace
from pathlib import Path

# flag -> request field, for every schedule; a plain number is read as 0:(number)
SCHEDULE_FLAGS = {"zoom": "zoom", "angle": "angle", "translation_x": "translation_x",
                  "translation_y": "translation_y", "translation_z": "translation_z",
                  "rotation_3d_x": "rotation_3d_x", "rotation_3d_y": "rotation_3d_y",
                  "rotation_3d_z": "rotation_3d_z", "fov": "fov", "strength": "strength", "guidance": "guidance",
                  "noise": "noise"}
PLAIN_FLAGS = {"frames": "num_frames", "fps": "fps", "steps": "num_inference_steps", "seed": "seed",
               "cadence": "cadence", "width": "width", "height": "height", "scheduler": "sampler",
               "negative_prompt": "negative_prompt", "image": "init_image", "video": "video", "nth": "nth",
               "prompt_blend": "prompt_blend", "depth_model": "depth_model", "seed_behavior": "seed_behavior"}


def lower(text: str) -> str:
    return text.strip().lower()


def add_parser(jobs, add_model_flags) -> None:
    """The `animate` sub-command and its flags; every value flag defaults to None so --settings can fill it."""
    p = jobs.add_parser("animate", help="Deforum-style 2D/3D animation or video-to-video, as an MP4")
    add_model_flags(p)
    p.add_argument("--mode", type=lower, choices=["2d", "3d", "video"], default=None, help="2d, 3d or video")
    p.add_argument("--prompt", action="append", help="a keyframed prompt, 'frame: prompt'; give it once per keyframe")
    p.add_argument("--negative-prompt", default=None)
    p.add_argument("--frames", type=int, default=None, help="frames in the video (default 24)")
    p.add_argument("--fps", type=float, default=None)
    for flag in SCHEDULE_FLAGS:
        p.add_argument(f"--{flag.replace('_', '-')}", dest=flag, default=None,
                       help="a Deforum schedule such as '0:(1.0), 30:(1.02)', or one number")
    p.add_argument("--cadence", type=int, default=None, help="diffuse every Nth frame (default 2)")
    p.add_argument("--color-coherence", type=lower, choices=["none", "rgb", "hsv", "lab"], default=None)
    p.add_argument("--border", type=lower, choices=["replicate", "wrap", "reflect"], default=None)
    p.add_argument("--seed", type=int, default=None, help="-1 picks a random seed")
    p.add_argument("--seed-behavior", type=lower, choices=["iter", "fixed", "random"], default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--scheduler", default=None, help="an A1111 sampler name")
    p.add_argument("--width", type=int, default=None, help="default: the model's size (512; 128 for tiny)")
    p.add_argument("--height", type=int, default=None, help="default: the model's size (512; 128 for tiny)")
    p.add_argument("--prompt-blend", type=int, default=None, help="frames to blend the prompt over at each change")
    p.add_argument("--image", default=None, help="init image (2D/3D)")
    p.add_argument("--video", default=None, help="source video (--mode video)")
    p.add_argument("--nth", type=int, default=None, help="video mode: use every nth source frame")
    p.add_argument("--depth-model", default=None, help="3D: a depth model folder or hub id (default: weights/, "
                                                        "then depth-anything/Depth-Anything-V2-Small-hf)")
    p.add_argument("--settings", default=None, help="a Deforum settings file; other flags override its values")
    p.add_argument("--gif", action="store_true", help="also write a GIF beside the MP4")
    p.add_argument("--fast-decode", action="store_true",
                   help="decode frames with TAESD, the tiny VAE (weights/taesd): ~16x cheaper, less fine detail")
    p.add_argument("--resume", metavar="PLAN", help="continue a stopped run from its .json plan")
    p.add_argument("--out", help="MP4 to write; frames go to <name>-frames/ and the plan to <name>.json")


def schedule_text(value: str) -> str:
    """'1.04' -> '0:(1.04)'; anything else is taken as a schedule."""
    return f"0:({value.strip()})" if re.fullmatch(r"\s*-?\d+(\.\d*)?\s*", value) else value


def request_from_args(args, manager):
    """The request: Deforum's defaults, then the settings file, then the flags given; plus notes."""
    from engine.video.animate import deforum_settings, schedules
    from engine.video.animate.request import AnimateRequest

    defaults = manager.defaults()
    req, notes = AnimateRequest(width=defaults.width, height=defaults.height), []
    if args.settings:
        req, unused = deforum_settings.read_settings(Path(args.settings), req)
        if unused:
            notes.append(deforum_settings.unused_note(unused))
    values = {}
    for flag, name in SCHEDULE_FLAGS.items():
        if getattr(args, flag) is not None:
            values[name] = schedule_text(getattr(args, flag))
    for flag, name in PLAIN_FLAGS.items():
        if getattr(args, flag) is not None:
            values[name] = getattr(args, flag)
    if args.prompt:
        values["prompts"] = schedules.parse_prompts("\n".join(args.prompt))
    if args.mode:
        values["mode"] = args.mode
    if args.color_coherence:
        values["color_coherence"] = args.color_coherence
    if args.border:
        values["border"] = args.border
    if args.gif:
        values["gif"] = True
    if args.fast:
        values["fast"] = True
    if args.fast_decode:
        values["fast_decode"] = True
    return replace(req, **values), notes


def run(args, make_manager, check_writable, cli_error) -> int:
    from engine.video.animate import run as animate_run
    from engine.video.run_folder import RunPaths, plan_run_paths

    notes: list[str] = []
    if args.resume:
        plan_path, plan = animate_run.read_plan(Path(args.resume))
        video = plan_run_paths(plan_path, plan).video
        if args.out and Path(args.out).resolve() != video.resolve():
            raise cli_error(f"--resume continues the run beside its plan, in {video}; leave out --out or give "
                            "that path.")
        made_with = plan.get("model_name") or plan.get("model")
        if args.model and args.model != made_with:
            raise cli_error(f"This run was made with --model {made_with}; resume it without --model, "
                            f"or with --model {made_with}.")
        args.model = made_with
        result = animate_run.resume(make_manager(args), Path(args.resume))
    else:
        if not args.out:
            raise cli_error("python -m engine animate: --out is required (or --resume PLAN)")
        out = check_writable(Path(args.out))
        if out.suffix.lower() != ".mp4":
            raise cli_error(f"python -m engine animate: --out must end in .mp4 (got {out.name})")
        manager = make_manager(args)
        req, notes = request_from_args(args, manager)
        paths = RunPaths(frames=out.with_name(f"{out.stem}-frames"), video=out)
        result = animate_run.animate(manager, req, paths)
    for note in [*notes, *result.notes]:
        print(note, file=sys.stderr)
    seed = result.parameters.get("seed")
    print(f"{result.video}  {len(result.frames)} frames, seed {seed}, settings {result.settings}")
    return 0
