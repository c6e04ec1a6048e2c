"""A training as a series of short calls (Hugging Face ZeroGPU): each call trains at most a few hundred steps and
ends with a checkpoint and the LoRA of the steps done; the next call resumes from that checkpoint.

A call's argument (`ChunkCall`) and its result (`TrainResult`) are plain, picklable values, since ZeroGPU runs each
call in a forked worker. On CPU with a fixed seed the calls add up to one uninterrupted training, tensor for tensor,
as Stop and Resume do.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.files.outputs import output_root
from engine.image.request import RunControl
from engine.jobs import gpu_time
from engine.train import checkpoints, limits
from engine.train.jobs import earlier_losses
from engine.train.loop import ProgressCallback, TrainResult, resume_lora, run_folder, train_lora
from engine.train.photos import PhotoSet, prepare_photos
from engine.train.request import TrainRequest, check_name, check_request, default_steps

FULL_REFUSAL = ("Full DreamBooth keeps no checkpoint to resume from, so it can't run as ZeroGPU's short GPU calls; "
                "train a LoRA instead (the default).")


@dataclass
class ChunkCall:
    """One GPU call of a training: the first starts the run from the prepared `photos`, the others resume it."""

    name: str
    req: TrainRequest  # checked; its resolution, samples and prior preservation size the calls
    total: int  # the run's steps
    steps: int  # the steps this call trains (fewer when the run ends first)
    per_call: int  # the steps each later call trains
    root: str  # the output folder holding train/NAME/
    photos: PhotoSet | None = None  # only in the call that starts the run: the crops it trains on
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss) of a resumed run's earlier steps

    @property
    def starts(self) -> bool:
        """This call prepares the run folder and trains the first steps."""
        return self.photos is not None

    def next(self, done: int) -> ChunkCall:
        """The call after one that ended at step `done`: it resumes from that call's checkpoint."""
        return replace(self, photos=None, steps=max(min(self.per_call, self.total - done), 1), losses=[])

    def seconds(self) -> int:
        """What this call asks ZeroGPU for (engine.jobs.gpu_time.train_seconds)."""
        req = self.req
        return gpu_time.train_seconds(self.steps, req.resolution, req.sample_every, req.sample_steps,
                                      req.prior_preservation, _class_images(req) if self.starts else 0)


def _class_images(req: TrainRequest) -> int:
    return req.class_images if req.prior_preservation else 0


def steps_per_call(req: TrainRequest, class_images: int = 0) -> int:
    """How many steps one call of this training trains (engine.jobs.gpu_time.train_steps_per_call)."""
    return gpu_time.train_steps_per_call(req.resolution, req.sample_every, req.sample_steps, req.prior_preservation,
                                         class_images)


def plan_start(manager, req: TrainRequest, photos: PhotoSet | None = None, root: Path | None = None) -> ChunkCall:
    """Check a new training now (ValueError, one sentence) and plan its first call; nothing is trained yet.

    `photos` are the crops already prepared by the tab; without them they are prepared from `req.images` here.
    """
    req = check_request(req)
    req.name = check_name(req.name, manager.loras.folder, req.overwrite)
    limits.check_family(manager.base().unet.config)
    photos = photos or prepare_photos(Path(req.images), req.class_word, req.resolution, req.captions)
    total = req.steps or default_steps(len(photos.photos))
    first = steps_per_call(req, _class_images(req))
    return ChunkCall(req.name, req, total, min(first, total), steps_per_call(req), str(root or output_root()), photos)


def plan_resume(manager, name: str, root: Path | None = None) -> ChunkCall:
    """Check that the training `name` can go on from its last checkpoint (ValueError) and plan its next call."""
    name = (name or "").strip()
    root = root or output_root()
    run_dir = run_folder(name, root)
    if not name or not (run_dir / "run.json").is_file():
        raise ValueError(f"There is no training named {name or '(no name)'} to resume; start a new one.")
    if not checkpoints.checkpoints(run_dir / "checkpoints"):
        raise ValueError(f"{name} has no checkpoint yet; start the training again.")
    saved = json.loads((run_dir / "run.json").read_text())
    if saved.get("model") != manager.model_label:
        raise ValueError(f"{name} was trained on {saved.get('model')}, but {manager.model_label} is loaded; load "
                         f"{saved.get('model')} to resume it.")
    req = check_request(TrainRequest(**saved["request"]))
    total = req.steps or default_steps(len(saved["photos"]))
    losses = earlier_losses(run_dir / "loss.csv")
    per_call = steps_per_call(req)
    done = losses[-1][0] if losses else 0
    return ChunkCall(name, req, total, max(min(per_call, total - done), 1), per_call, str(root), None, losses)


def run_call(manager, call: ChunkCall, control: RunControl | None = None,
             on_progress: ProgressCallback | None = None) -> TrainResult:
    """Train one call's steps and end with a checkpoint and the LoRA of the steps done.

    The call that starts the run prepares its folder (as `train_lora` does); the others resume from its last
    checkpoint. The result says how far the run is (`steps_done` of `steps`) and whether Stop ended it.
    """
    if call.starts:
        return train_lora(manager, call.req, control, on_progress, photos=call.photos, root=Path(call.root),
                          steps_this_call=call.steps)
    return resume_lora(manager, call.name, control, on_progress, root=Path(call.root), steps_this_call=call.steps)
