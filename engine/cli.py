"""`python -m engine ...`: the app's jobs from a shell, for scripts and batch work."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.control.cli import add_control_flags, units_from_args
from engine.image.generate import image_to_image, inpaint, text_to_image
from engine.image.request import ImageRequest
from engine.pipeline.schedulers import DEFAULT_SAMPLER
from engine.text.prompts import MAX_TOKENS

DEFAULT_STEPS, DEFAULT_GUIDANCE = 20, 7.0


class CliError(Exception):
    """A bad command line: reported as one line on stderr with exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but usage mistakes print one line, not a usage block."""

    def error(self, message: str):
        raise CliError(f"{self.prog}: {message}")


def add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="hub id, diffusers folder, file in weights/, or 'tiny'")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    p.add_argument("--fast", action="store_true",
                   help="reuse deep UNet features between steps (PyTorch back end; faster there, but slower than "
                        "plain steps on OpenVINO, where the app does not offer it)")
    p.add_argument("--compile", action="store_true", help="torch.compile the UNet (a minute's warm-up per size)")
    p.add_argument("--backend", default=os.environ.get("STUDIO_BACKEND", "auto"),
                   help="torch, openvino or auto: where the UNet runs (auto: OpenVINO on x86 CPUs where installed)")
    p.add_argument("--precision", default=os.environ.get("STUDIO_PRECISION", "auto"),
                   help="auto, bf16 or int8: int8 quantises OpenVINO's UNet with NNCF (auto is bf16)")
    p.add_argument("--lora-dir", default=os.environ.get("STUDIO_LORA_DIR"),
                   help="folder of LoRAs for <lora:NAME:WEIGHT> tags (default: weights/Lora)")
    p.add_argument("--embeddings-dir", default=os.environ.get("STUDIO_EMBEDDINGS_DIR"),
                   help="folder of textual-inversion embeddings, used by name in prompts (default: weights/embeddings)")
    p.add_argument("--max-prompt-tokens", type=int, default=os.environ.get("STUDIO_MAX_PROMPT_TOKENS", MAX_TOKENS),
                   help=f"the longest prompt or negative prompt accepted, in CLIP tokens (default {MAX_TOKENS})")


def add_decode_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fast-decode", action=argparse.BooleanOptionalAction, default=None,
                   help="decode with TAESD, the tiny VAE (weights/taesd): about 16x cheaper than the VAE, less fine "
                        "detail; on by default with --few-step when TAESD is present")


def add_generation_flags(p: argparse.ArgumentParser, walk: bool = False) -> None:
    if walk:
        p.add_argument("--prompt", action="append", help="a keyframe prompt; give it twice or more")
        p.add_argument("--seed", action="append", type=int,
                       help="a seed per prompt; a single seed counts up for the rest; -1 = random")
    else:
        p.add_argument("--prompt", default="")
        p.add_argument("--seed", type=int, default=-1, help="-1 picks a random seed")
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    p.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    p.add_argument("--scheduler", default=DEFAULT_SAMPLER, help="an A1111 sampler name")
    p.add_argument("--width", type=int, default=None, help="default: the model's size (512; 128 for tiny)")
    p.add_argument("--height", type=int, default=None, help="default: the model's size (512; 128 for tiny)")


def build_parser() -> Parser:
    parser = Parser(prog="python -m engine", description="Diffusion Studio from the command line.")
    jobs = parser.add_subparsers(dest="job", required=True, parser_class=Parser)
    for job, help_text in (("txt2img", "text to image"), ("img2img", "image to image"), ("inpaint", "inpaint")):
        p = jobs.add_parser(job, help=help_text)
        add_model_flags(p)
        add_generation_flags(p)
        add_decode_flag(p)
        p.add_argument("--batch-count", type=int, default=1)
        p.add_argument("--out", required=True, help="PNG to write; batches add -2, -3, ...")
        if job == "txt2img":
            add_hires_flags(p)
        if job != "inpaint":
            add_variation_flags(p)

        add_control_flags(p)
        p.add_argument("--style", action="append", metavar="NAME",
                       help="apply this style from the styles file to the prompts; give it again for more")
        p.add_argument("--styles", default=os.environ.get("STUDIO_STYLES"), metavar="PATH",
                       help="an A1111 styles.csv (default: styles.csv in the app folder, else presets/styles.csv)")
        p.add_argument("--few-step", nargs="?", const="", default=None, metavar="LORA",
                       help="Few-step mode: an LCM, TCD or Hyper-SD LoRA from the LoRA folder (the first found, or "
                            "the one named) with its sampler, 4 steps and CFG 1 (unless --steps/--guidance are given)")
        if job != "txt2img":
            p.add_argument("--image", required=True)
            p.add_argument("--strength", type=float, default=0.75)
        if job == "inpaint":
            p.add_argument("--mask", required=True, help="white (or painted) where the image changes")
            p.add_argument("--mask-blur", type=int, default=4)
            p.add_argument("--only-masked", action="store_true")
            p.add_argument("--padding", type=int, default=32)
    for job, help_text in (("walk", "latent walk between prompts, as an MP4"),
                           ("dream", "dream video: one prompt, a random walk through noise, as an MP4")):
        p = jobs.add_parser(job, help=help_text)
        add_model_flags(p)
        add_generation_flags(p, walk=job == "walk")
        add_decode_flag(p)
        if job == "dream":
            p.add_argument("--keyframes", type=int, default=4, help="random keyframe noises to walk through")
        p.add_argument("--frames", type=int, default=24, help="total frames in the video")
        p.add_argument("--fps", type=float, default=12)
        p.add_argument("--batch-size", type=int, default=1)
        p.add_argument("--loop", action="store_true", help="walk back to the start so the video loops")
        p.add_argument("--smooth", action="store_true", help="even out the change between frames (renders twice)")
        p.add_argument("--gif", action="store_true", help="also write a GIF beside the MP4")
        p.add_argument("--resume", metavar="PLAN", help="continue a stopped run from its .json plan")
        p.add_argument("--out", help="MP4 to write; frames go to <name>-frames/ and the plan to <name>.json")
    from engine.video.animate import cli as animate_cli
    animate_cli.add_parser(jobs, add_model_flags)
    from engine.video.motion import cli as motion_cli
    motion_cli.add_parser(jobs, add_model_flags)
    p = jobs.add_parser("aging", help="aging timelapse of a face photo, as an MP4")
    add_face_flags(p)
    add_decode_flag(p)
    p.add_argument("--ages", required=True, help="e.g. 20,40,60 or 10-80/10")
    p.add_argument("--subject", default="person", choices=["woman", "man", "person"])
    p.add_argument("--strength", type=float, default=None, help="default: the preset's")
    p.add_argument("--transition-frames", type=int, default=2, help="rendered in-between frames per pair of ages")
    p.add_argument("--fps", type=float, default=8)
    p.add_argument("--no-captions", action="store_true", help="leave out the 'Age N' captions")
    p.add_argument("--out", required=True, help="MP4 to write; the ages go to <name>-frames/ and a grid beside")
    p = jobs.add_parser("gender-swap", help="the same person as the other gender")
    add_face_flags(p)
    add_decode_flag(p)
    p.add_argument("--to", required=True, dest="direction", help="woman or man")
    p.add_argument("--strength", type=float, default=None, help="default: the preset's")
    p.add_argument("--variants", type=int, default=1)
    p.add_argument("--out", required=True, help="PNG to write; more variants add -2, -3, ...")
    from engine.xyz import cli as xyz_cli
    xyz_cli.add_parser(jobs, add_model_flags, add_generation_flags)
    from engine.train import cli as train_cli
    train_cli.add_parser(jobs, add_model_flags)
    from engine.extras import cli as extras_cli
    extras_cli.add_parser(jobs)
    p = jobs.add_parser("download", help="fetch a few-step LoRA, TAESD or a motion adapter from the hub into weights/")
    p.add_argument("name", nargs="?", help="the part to fetch; leave out to list them")
    p.add_argument("--lora-dir", default=os.environ.get("STUDIO_LORA_DIR"),
                   help="the LoRA folder few-step LoRAs go to (default: weights/Lora)")
    return parser


def add_hires_flags(p: argparse.ArgumentParser) -> None:
    """A1111's Hires. fix: --hires-scale turns it on; the rest have A1111's defaults."""
    from engine.image.hires import DEFAULT_STRENGTH, DEFAULT_UPSCALER, UPSCALERS

    p.add_argument("--hires-scale", type=float, default=None,
                   help="Hires. fix: draw at --width x --height, upscale by this (1 to 4) and redraw")
    p.add_argument("--hires-upscaler", default=DEFAULT_UPSCALER, help=f"one of: {', '.join(UPSCALERS)}")
    p.add_argument("--hires-steps", type=int, default=0, help="steps of the second pass (0: the same as --steps)")
    p.add_argument("--hires-strength", type=float, default=DEFAULT_STRENGTH,
                   help="denoising strength of the second pass, 0 to 1 (0: upscale only)")


def add_face_flags(p: argparse.ArgumentParser) -> None:
    """What aging and gender swap share: the photo, the face choice, and the txt2img generation flags."""
    add_model_flags(p)
    p.add_argument("--image", required=True)
    p.add_argument("--steps", type=int, default=None, help="default: the preset's")
    p.add_argument("--guidance", type=float, default=None, help="default: the preset's")
    p.add_argument("--seed", type=int, default=-1)
    p.add_argument("--scheduler", default=None, help="default: the preset's")
    p.add_argument("--face", type=face_choice, default=None,
                   help="which detected face: 1 = largest, 2 = next, ...; 'all' for every face")
    p.add_argument("--keep-identity", type=float, default=0.0,
                   help="identity adapter scale, 0 (off) to 1, about 0.6 to keep the face (needs its weights)")
    p.add_argument("--padding", type=float, default=0.5, help="region around the face, in face sizes")
    p.add_argument("--whole-photo", action="store_true", help="regenerate the whole photo, not just the face")
    p.add_argument("--restore-faces", default=None, metavar="NAME",
                   help="restore the regenerated face with this restorer (weights/GFPGAN or weights/Codeformer)")
    p.add_argument("--visibility", type=float, default=1.0, help="how much of the restored face shows, 0 to 1")
    p.add_argument("--size", type=int, default=None, help="the working resolution (default: the model's, 512; 128 for tiny)")


def face_choice(text: str) -> int | str:
    """--face: a face number counting from 1 (1 = largest), as the UI and the messages count, or 'all'."""
    if text.strip().lower() == "all":
        return "all"
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a face number from 1 (the largest) or 'all', not {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"faces are numbered from 1 (the largest), not {number}")
    return number


def face_settings(args) -> dict:
    """The engine's face fields from --face, --padding, --whole-photo and --keep-identity."""
    every = args.face == "all"
    return dict(face_index=None if every or args.face is None else args.face - 1, all_faces=every,
                padding=args.padding, whole_photo=args.whole_photo, keep_identity=args.keep_identity,
                restore_faces=args.restore_faces or None, visibility=args.visibility)


def with_preset_defaults(args, defaults: dict) -> argparse.Namespace:
    """Flags the user left out take the preset's values."""
    names = {"steps": "num_inference_steps", "guidance": "guidance_scale", "scheduler": "sampler",
             "strength": "strength"}
    return argparse.Namespace(**{flag: getattr(args, flag) if getattr(args, flag) is not None else defaults[key]
                                 for flag, key in names.items()})


def run_aging(args) -> int:
    import shutil

    from engine.faces.aging import AgingRequest, aging_timelapse, parse_ages
    from engine.text.presets import aging_preset

    out = check_writable(Path(args.out))
    preset = with_preset_defaults(args, aging_preset().defaults)
    req = AgingRequest(ages=parse_ages(args.ages), subject=args.subject, strength=preset.strength,
                       num_inference_steps=preset.steps, guidance_scale=preset.guidance, seed=args.seed,
                       sampler=preset.scheduler, transition_frames=args.transition_frames, fps=args.fps,
                       captions=not args.no_captions, size=args.size, fast=args.fast, **face_settings(args),
                       fast_decode=bool(args.fast_decode))
    result = aging_timelapse(make_manager(args), req, Path(args.image), out.with_name(f"{out.stem}-frames"))
    for note in [*result.notes, result.identity_note]:
        if note:
            print(note, file=sys.stderr)
    shutil.move(result.video, out)
    shutil.copyfile(result.grid_path, out.with_name(f"{out.stem}-grid.png"))
    print(f"{out}  ages {', '.join(str(a) for a, _ in result.keyframes)}, seed {result.seed}")
    return 0


def run_gender_swap(args) -> int:
    from engine.faces.gender import GenderRequest, gender_swap
    from engine.files import pnginfo
    from engine.text.presets import gender_preset

    out = check_writable(Path(args.out))
    preset = with_preset_defaults(args, gender_preset().defaults)
    req = GenderRequest(direction=args.direction, strength=preset.strength, num_inference_steps=preset.steps,
                        guidance_scale=preset.guidance, seed=args.seed, variants=args.variants,
                        sampler=preset.scheduler, size=args.size, fast=args.fast, **face_settings(args),
                        fast_decode=bool(args.fast_decode))
    result = gender_swap(make_manager(args), req, Path(args.image))
    for note in [*result.notes, result.identity_note]:
        if note:
            print(note, file=sys.stderr)
    for i, variant in enumerate(result.variants):
        path = out if i == 0 else out.with_name(f"{out.stem}-{i + 1}{out.suffix or '.png'}")
        pnginfo.save_png(variant.image, path, variant.parameters)
        print(f"{path}  seed {variant.seed}")
    return 0


def make_manager(args):
    from engine.pipeline.manager import PipelineManager, RuntimeOptions
    options = RuntimeOptions(device=args.device, dtype=args.dtype, compile_unet=args.compile,
                             backend=getattr(args, "backend", "auto"),
                             openvino_background=False,  # a one-shot run: prepare OpenVINO before the image
                             precision=getattr(args, "precision", "auto"))
    if getattr(args, "max_prompt_tokens", None) is not None:
        options.max_prompt_tokens = args.max_prompt_tokens
    folders = {key: Path(getattr(args, key)) for key in ("lora_dir", "embeddings_dir") if getattr(args, key, None)}
    return PipelineManager(args.model, options, **folders)


def fill_model_defaults(args, manager) -> None:
    """Sizes left out take the model's own (128 px for the tiny model, so it answers in about a second)."""
    defaults = manager.defaults()
    args.width = defaults.width if args.width is None else args.width
    args.height = defaults.height if args.height is None else args.height


def styled_prompts(args) -> tuple[str, str]:
    """--prompt and --negative-prompt with the --style entries applied, as the tabs' Styles picker does."""
    if not getattr(args, "style", None):
        return args.prompt, args.negative_prompt
    from engine.text.styles import open_styles

    return open_styles(args.styles).apply(args.style, args.prompt, args.negative_prompt)


def request_from_args(args) -> ImageRequest:
    prompt, negative_prompt = styled_prompts(args)
    return ImageRequest(prompt=prompt, negative_prompt=negative_prompt, num_inference_steps=args.steps,
                        guidance_scale=args.guidance, width=args.width, height=args.height, seed=args.seed,
                        batch_count=getattr(args, "batch_count", 1), sampler=args.scheduler,
                        strength=getattr(args, "strength", 0.75), mask_blur=getattr(args, "mask_blur", 4),
                        only_masked=getattr(args, "only_masked", False),
                        only_masked_padding=getattr(args, "padding", 32), fast=args.fast,
                        **hires_fields(args), **variation_args(args), control_units=units_from_args(args),
                        fast_decode=bool(getattr(args, "fast_decode", False)))


def add_variation_flags(p: argparse.ArgumentParser) -> None:
    """A1111's Variation seed and strength: similar images around one seed's image (engine.image.variations)."""
    p.add_argument("--variation-seed", type=int, default=-1,
                   help="the seed whose noise is blended in (-1: random, printed); counts up with --batch-count")
    p.add_argument("--variation-strength", type=float, default=0.0,
                   help="how far toward the variation seed's noise, 0 (off) to 1; 0.1-0.3 gives similar images")


def variation_args(args) -> dict:
    """The request's variation fields from --variation-* (txt2img and img2img only)."""
    if not hasattr(args, "variation_strength"):
        return {}
    return dict(variation_seed=args.variation_seed, variation_strength=args.variation_strength)


def hires_fields(args) -> dict:
    """The request's Hires. fix fields from --hires-* (txt2img only; off unless --hires-scale is given)."""
    if getattr(args, "hires_scale", None) is None:
        return {}
    return dict(hires_scale=args.hires_scale, hires_upscaler=args.hires_upscaler, hires_steps=args.hires_steps,
                hires_strength=args.hires_strength)


def use_few_step(args, manager) -> None:
    """--few-step: the LoRA's tag in the prompt, its sampler, and its steps and CFG where left at the defaults."""
    from engine.loaders import fewstep

    few = fewstep.pick(manager.loras, args.few_step or None)
    args.prompt = fewstep.with_tag(args.prompt, few)
    args.scheduler = few.sampler
    if args.steps == DEFAULT_STEPS:
        args.steps = few.num_inference_steps
    if args.guidance == DEFAULT_GUIDANCE:
        args.guidance = few.guidance_scale
    if args.fast_decode is None and manager.taesd_available():  # a few-step image's VAE costs more than its steps
        args.fast_decode = True
    print(f"Few-step mode: {few.label}" + (", decoded by TAESD" if args.fast_decode else ""), file=sys.stderr)


def check_writable(path: Path) -> Path:
    folder = path.resolve().parent
    if not folder.is_dir():
        raise ValueError(f"The folder {folder} for --out does not exist.")
    return path


def check_resume_out(out: str | None, video: Path) -> None:
    """A resumed run writes beside its plan; an --out elsewhere is refused rather than ignored."""
    if out and Path(out).resolve() != video.resolve():
        raise CliError(f"--resume continues the run beside its plan, in {video}; leave out --out or give that path.")


def run_image_job(args) -> int:
    from engine.files import pnginfo

    out = check_writable(Path(args.out))
    manager = make_manager(args)
    fill_model_defaults(args, manager)
    if args.few_step is not None:
        use_few_step(args, manager)
    req = request_from_args(args)
    if args.job == "txt2img":
        result = text_to_image(manager, req)
    elif args.job == "img2img":
        result = image_to_image(manager, req, Path(args.image))
    else:
        result = inpaint(manager, req, Path(args.image), Path(args.mask))
    for note in result.notes:
        print(note, file=sys.stderr)
    for i, item in enumerate(result.images):
        path = out if i == 0 else out.with_name(f"{out.stem}-{i + 1}{out.suffix or '.png'}")
        pnginfo.save_png(item.image, path, item.parameters)
        variation = f"  variation seed {item.variation_seed}" if item.variation_seed is not None else ""
        print(f"{path}  seed {item.seed}{variation}")
    return 0


def walk_seeds(seeds: list[int] | None, count: int) -> list[int | None]:
    """One seed counts up for every prompt; several are taken as given; -1 means random."""
    seeds = seeds or []
    if len(seeds) == 1 and count > 1 and seeds[0] >= 0:
        seeds = [seeds[0] + i for i in range(count)]
    return [None if s < 0 else s for s in seeds]


def run_video_job(args) -> int:
    from engine.video import run_folder, walk, walk_request

    if args.resume:
        plan_path, plan = walk.read_plan(Path(args.resume))
        check_resume_out(args.out, run_folder.plan_run_paths(plan_path, plan).video)
        made_with = walk.plan_model(plan)
        if args.model and args.model != made_with:
            raise CliError(f"This run was made with --model {made_with}; resume it without --model, "
                           f"or with --model {made_with}.")
        args.model = made_with
        result = walk.resume(make_manager(args), Path(args.resume))
    else:
        manager = make_manager(args)
        fill_model_defaults(args, manager)
        if not args.out:
            raise CliError(f"python -m engine {args.job}: --out is required (or --resume PLAN)")
        out = check_writable(Path(args.out))
        settings = dict(negative_prompt=args.negative_prompt, num_frames=args.frames, fps=args.fps,
                        num_inference_steps=args.steps, guidance_scale=args.guidance, width=args.width,
                        height=args.height, sampler=args.scheduler, loop=args.loop, smooth=args.smooth,
                        batch_size=args.batch_size, gif=args.gif, fast=args.fast,
                        fast_decode=bool(args.fast_decode))
        if args.job == "walk":
            prompts = args.prompt or []
            req = walk_request.WalkRequest(prompts=prompts, seeds=walk_seeds(args.seed, len(prompts)), **settings)
        else:
            req = walk_request.dream_request(args.prompt, args.keyframes, args.seed, **settings)
        paths = run_folder.RunPaths(frames=out.with_name(f"{out.stem}-frames"), video=out)
        result = walk.latent_walk(manager, req, paths)
    for note in result.notes:
        print(note, file=sys.stderr)
    print(f"{result.video}  {len(result.frames)} frames, seeds {result.parameters['seeds']}")
    return 0


def run_xyz(args) -> int:
    from engine.xyz import cli as xyz_cli
    return xyz_cli.run(args, make_manager, fill_model_defaults, request_from_args, check_writable, CliError)


def run_animate(args) -> int:
    from engine.video.animate import cli as animate_cli
    return animate_cli.run(args, make_manager, check_writable, CliError)


def run_text2video(args) -> int:
    from engine.video.motion import cli as motion_cli
    return motion_cli.run(args, make_manager, check_writable, CliError)


def run_download(args) -> int:
    from engine.files.downloads import Downloads
    from engine.pipeline.models import WEIGHTS_DIR

    downloads = Downloads(WEIGHTS_DIR, Path(args.lora_dir) if args.lora_dir else None)
    if not args.name:
        for part in downloads.parts:
            print(f"{part.label}  {'present' if downloads.present(part) else 'available to download'}")
        return 0
    shown = {"tenth": -1}

    def report(progress):
        tenth = int(progress.fraction * 10)
        if tenth != shown["tenth"]:
            shown["tenth"] = tenth
            print(f"{progress.what}: {tenth * 10}%", file=sys.stderr)

    for path in downloads.download(args.name, report):
        print(path)
    return 0


def run_extras(args) -> int:
    from engine.extras import cli as extras_cli
    from engine.pipeline.models import WEIGHTS_DIR
    return extras_cli.run(args, check_writable, WEIGHTS_DIR)


def run_train(args) -> int:
    from engine.train import cli as train_cli
    return train_cli.run(args, make_manager, CliError)


JOBS = {"txt2img": run_image_job, "img2img": run_image_job, "inpaint": run_image_job,
        "walk": run_video_job, "dream": run_video_job, "aging": run_aging, "gender-swap": run_gender_swap,
        "xyz": run_xyz,
        "animate": run_animate, "text2video": run_text2video, "train": run_train, "download": run_download,
        "extras": run_extras}


def quiet_libraries() -> None:
    """Keep library chatter (dtype casts, missing torchvision) out of a command's one-line errors."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    try:
        args = build_parser().parse_args(argv)
        return JOBS[args.job](args)
    except (CliError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
