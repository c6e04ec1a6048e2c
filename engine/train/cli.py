"""`python -m engine train`: a DreamBooth LoRA from a folder or zip of photos, with progress lines; Ctrl-C stops
after the current step and keeps a usable LoRA, and `--resume NAME` continues it.

`accelerate launch --multi_gpu --num_processes N -m engine train ...` trains data-parallel on N GPUs (or N CPU
processes with --device cpu): --batch-size photos per process and step, one LoRA written by the main process.
"""
from __future__ import annotations

import signal
import sys
from pathlib import Path

from engine.train.request import TrainRequest


def add_parser(jobs, add_model_flags) -> None:
    p = jobs.add_parser("train", help="teach the model a person or a thing from 3-50 photos (a DreamBooth LoRA)")
    add_model_flags(p)
    p.add_argument("--images", help="a folder or .zip of 3 to 50 photos; same-name .txt files are captions")
    p.add_argument("--name", help="the trigger word and the LoRA's file name (letters, digits, - and _)")
    p.add_argument("--class-word", default="person", help="person, man, woman, dog, object, or free text")
    p.add_argument("--steps", type=int, default=None, help="default: 100 per photo, within 400-1500")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=float, default=8.0)
    p.add_argument("--resolution", type=int, default=None, help="training size in pixels (default: the model's)")
    p.add_argument("--lr", type=float, default=None, help="UNet learning rate (default 1e-4; 5e-6 with --full)")
    p.add_argument("--text-encoder", action="store_true",
                   help="also train the text encoder (lr 5e-5; with --full, the --lr)")
    p.add_argument("--prior-preservation", action="store_true",
                   help="train beside class images the model makes itself (cached), keeping the class word general")
    p.add_argument("--class-images", type=int, default=50, help="class images for --prior-preservation")
    p.add_argument("--face-weighted", action="store_true", help="count the face more in the loss (people)")
    p.add_argument("--flip", action="store_true", help="also train on the mirrored photos")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=1,
                   help="photos per step (per process under accelerate launch: the step's batch is this times N)")
    p.add_argument("--sample-every", type=int, default=100, help="steps between sample images (0: at the end)")
    p.add_argument("--sample-steps", type=int, default=20, help="denoising steps of each sample")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--keep-checkpoints", type=int, default=3, help="the last K checkpoints are kept")
    p.add_argument("--overwrite", action="store_true", help="replace an existing LoRA of that name")
    p.add_argument("--full", action="store_true",
                   help="Full DreamBooth: fine-tune the whole UNet into weights/NAME.safetensors, a model for the "
                        "model menu (a CUDA GPU with 16 GB and bitsandbytes, or 24 GB; prior preservation advised)")
    p.add_argument("--resume", metavar="NAME", help="continue the training NAME from its last checkpoint")


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def print_progress(progress) -> None:
    if progress.message:
        print(progress.message, file=sys.stderr, flush=True)
        return
    line = (f"step {progress.step}/{progress.steps}  loss {progress.loss:.4f}  elapsed {clock(progress.elapsed_s)}"
            f"  eta {clock(progress.eta_s)}")
    for path in progress.samples:
        line += f"\n  sample {path}"
    print(line, file=sys.stderr, flush=True)


def run(args, make_manager, error_cls) -> int:
    from engine.train import parallel

    if not args.resume and not (args.images and args.name):
        raise error_cls("python -m engine train: give --images and --name (or --resume NAME)")
    if args.full and args.resume:
        raise ValueError("Full DreamBooth keeps no checkpoints to resume; start it again without --resume.")
    manager = make_manager(args)
    if args.full and parallel.launched():
        raise ValueError("Full DreamBooth trains in one process; run it with python -m engine train, not under "
                         "accelerate launch.")
    group = parallel.join(manager.device)  # several processes under accelerate launch, else SINGLE
    try:
        return _run(args, manager, group)
    finally:
        parallel.leave()


def _run(args, manager, group) -> int:
    from engine.image.request import RunControl
    from engine.train import limits
    from engine.train.full import FULL_UNET_LR, train_full
    from engine.train.loop import resume_lora, train_lora

    report = print_progress if group.is_main else None
    if args.full:
        manager.base()
        refusal = limits.full_dreambooth_refusal(manager.device, limits.model_kind(manager))
        if refusal:
            raise ValueError(refusal)
    control = RunControl()

    def stop(signum, frame):
        if group.is_main:  # under accelerate launch every process gets Ctrl-C; they agree on the step
                print("Stopping after this step; the model file keeps the steps done." if args.full else
                  "Stopping after this step; the LoRA keeps the steps done (resume with --resume).", file=sys.stderr)
        control.stop()

    previous = signal.signal(signal.SIGINT, stop)
    try:
        if args.resume:
            result = resume_lora(manager, args.resume, control, report)
        else:
            req = TrainRequest(
                images=str(Path(args.images)), name=args.name, class_word=args.class_word, steps=args.steps,
                rank=args.rank, alpha=args.alpha, resolution=args.resolution or manager.defaults().width,
                unet_lr=args.lr or (FULL_UNET_LR if args.full else 1e-4),
                text_encoder_lr=(args.lr or FULL_UNET_LR) if args.full else 5e-5, text_encoder=args.text_encoder,
                prior_preservation=args.prior_preservation,
                class_images=args.class_images, face_weighted=args.face_weighted, flip=args.flip, seed=args.seed,
                sample_every=args.sample_every, sample_steps=args.sample_steps,
                checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
                overwrite=args.overwrite, batch_size=args.batch_size)
            result = (train_full if args.full else train_lora)(manager, req, control, report)
    finally:
        signal.signal(signal.SIGINT, previous)
    if not group.is_main:
        return 0
    for note in result.notes:
        print(note, file=sys.stderr)
    written = result.model if args.full else result.lora
    print(f"{written}  {result.steps_done}/{result.steps} steps; samples and loss.csv in {result.run_dir}")
    return 0
