"""`python -m engine xyz`: the X/Y/Z plot from a shell, a labelled grid PNG (or, with --video, an MP4 along X)."""
from __future__ import annotations

import sys
from pathlib import Path

from engine.control.cli import add_control_flags


def add_parser(jobs, add_model_flags, add_generation_flags) -> None:
    p = jobs.add_parser("xyz", help="X/Y/Z plot: a labelled grid of the same image with settings changed per axis")
    add_model_flags(p)
    add_generation_flags(p)
    p.add_argument("--x", default="", help="an axis as 'Name: values', e.g. 'CFG Scale: 1, 5, 9' or 'Steps: 2-40 (+2)'")
    p.add_argument("--y", default="", help="a second axis, e.g. 'Sampler: Euler, DDIM'")
    p.add_argument("--z", default="", help="a third axis: one grid per value (grid-z2.png, ...)")
    p.add_argument("--image", default=None, help="a start image: the plot runs image to image")
    p.add_argument("--strength", type=float, default=0.75, help="image to image denoising strength")
    add_control_flags(p)
    p.add_argument("--video", action="store_true",
                   help="write an MP4 along X instead of the grid, one captioned frame per X value")
    p.add_argument("--fps", type=float, default=4.0, help="the video's frames per second")
    p.add_argument("--out", required=True, help="the grid PNG (the MP4 with --video); cells go to <name>-cells/")


def run(args, make_manager, fill_model_defaults, request_from_args, check_writable, error_cls) -> int:
    from engine.image.request import pick_seed
    from engine.xyz import PlotRequest, default_seconds_per_step, describe_plan, plan_plot, run_plot, write_plot

    out = check_writable(Path(args.out))
    if args.video and out.suffix.lower() != ".mp4":
        raise error_cls(f"python -m engine xyz: with --video, --out is the MP4 to write; got {out.name!r}")
    if not args.video and out.suffix.lower() not in ("", ".png"):
        raise error_cls(f"python -m engine xyz: --out is the grid PNG to write; got {out.name!r}")
    manager = make_manager(args)
    fill_model_defaults(args, manager)
    base = request_from_args(args)
    base.seed = pick_seed(base.seed)  # one seed for the plan shown and the run
    req = PlotRequest(base, x=args.x, y=args.y, z=args.z, video="X" if args.video else "",
                      fps=args.fps)
    task = "img2img" if args.image else "txt2img"
    plan = plan_plot(req, task, manager.options.max_prompt_tokens)  # every value checked before the model loads
    print(describe_plan(plan, default_seconds_per_step(manager)), file=sys.stderr)
    result = run_plot(manager, req, Path(args.image) if args.image else None, task=task)
    for note in result.notes:
        print(note, file=sys.stderr)
    written = write_plot(result, out, video_out=out if args.video else None)
    cells = sum(c is not None for c in result.cells)
    what = f"{len(result.frames)} frames" if args.video else f"{len(result.grids)} grid{'s' * (len(result.grids) > 1)}"
    print(f"{written[0]}  {what}, {cells} cells in {out.with_name(out.stem + '-cells')}/, seed {plan.cells[0].request.seed}")
    return 0
