"""Trainings running in this process, one at a time, each in its own thread; the Train tab and REST find them by id.

A training holds one of the gate's generation slots only while it steps, and gives it way between two steps to
any image request waiting there: an image waits at most one training step, and the training then goes on.

With `--ray` (the manager's `runner` set) this process holds no weights: each training runs as a Ray task of its
own (engine.backends.ray_train) and the job's thread copies the task's progress into the same TrainJob fields, so
the Train tab and REST follow it unchanged. The checks that need the model (its family, Full DreamBooth's GPU) then
run on the worker, and their sentence comes back as the job's error.
"""
from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from engine.backends.ray_train import start_ray_training
from engine.files.outputs import output_root
from engine.image.request import RunControl
from engine.train import checkpoints, limits
from engine.train.full import FULL_UNET_LR, FullResult, check_model_name, train_full
from engine.train.loop import TrainProgress, TrainResult, resume_lora, run_folder, train_lora
from engine.train.photos import PhotoSet, prepare_photos
from engine.train.request import TrainRequest, check_name, check_request, default_steps

log = logging.getLogger("diffusion_studio")
ENDED = ("done", "stopped", "failed")


@dataclass
class TrainJob:
    """One training: where it stands, written by its thread and read by whoever polls it."""

    id: str
    name: str
    control: RunControl
    class_word: str = ""
    steps: int = 0  # the total, known before the first step
    step: int = 0
    loss: float | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss), a resume's earlier steps too
    elapsed_s: float = 0.0
    eta_s: float | None = None
    samples: list[Path] = field(default_factory=list)  # every sample made so far, oldest first
    message: str = ""  # a stage before the steps ("Class image 3 of 50"), empty while stepping
    state: str = "waiting"  # waiting (for a slot), training, done, stopped or failed
    error: str = ""  # the sentence when it failed
    notes: list[str] = field(default_factory=list)
    full: bool = False  # Full DreamBooth: the result is a model file in weights/, not a LoRA
    result: TrainResult | FullResult | None = None
    started: float = field(default_factory=time.monotonic)
    ended: threading.Event = field(default_factory=threading.Event)

    @property
    def finished(self) -> bool:
        return self.state in ENDED

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the training ended (True) or `timeout` passed (False)."""
        return self.ended.wait(timeout)

    @property
    def written(self) -> Path | None:
        """The file the training wrote: the LoRA, or with Full DreamBooth the model in weights/."""
        if self.result is None:
            return None
        return self.result.model if self.full else self.result.lora

    def record(self, progress: TrainProgress) -> None:
        self.state = "training"
        self.elapsed_s = time.monotonic() - self.started
        if progress.message:
            self.message = progress.message
            return
        self.message, self.step, self.steps = "", progress.step, progress.steps
        self.loss, self.eta_s = progress.loss, progress.eta_s
        if progress.loss is not None:
            self.losses.append((progress.step, progress.loss))
        self.samples.extend(progress.samples)

    def snapshot(self) -> dict:
        """Plain values for JSON: the step, the loss, the ETA, the state and the files so far."""
        written = self.written
        return {"id": self.id, "name": self.name, "state": self.state, "step": self.step, "steps": self.steps,
                "loss": self.loss, "elapsed_s": round(self.elapsed_s, 1),
                "eta_s": None if self.eta_s is None else round(self.eta_s, 1), "message": self.message,
                "error": self.error, "notes": list(self.notes), "samples": [str(p) for p in self.samples],
                "lora": str(written) if written and not self.full else None,
                "model": str(written) if written and self.full else None,
                "class_word": self.class_word}


class Turn:
    """A long job's hold on one generation slot, given way between its steps while image requests wait."""

    def __init__(self, gate, control: RunControl):
        self.gate, self.control, self._slot = gate, control, None

    def __enter__(self):
        self._take()
        return self

    def __exit__(self, *exc):
        self._release()

    def give_way(self) -> None:
        """Let every image request now waiting at the gate run first; then take a slot back."""
        if not self.gate.waiting():
            return
        self._release()
        while self.gate.waiting() and not self.control.stopped:
            time.sleep(0.05)
        self._take()

    def _take(self):
        self._slot = self.gate.slot(refuse_when_full=False)  # a training waits its turn; it is never "busy"
        self._slot.__enter__()

    def _release(self):
        slot, self._slot = self._slot, None
        if slot is not None:
            slot.__exit__(None, None, None)


class TrainJobs:
    """The trainings of one manager: start (checked at once), look up, stop. Finished ones stay listed."""

    def __init__(self, manager):
        self.manager = manager
        self._jobs: dict[str, TrainJob] = {}
        self._lock = threading.Lock()

    def start(self, req: TrainRequest, photos: PhotoSet | None = None, control: RunControl | None = None,
              root: Path | None = None, full: bool = False) -> TrainJob:
        """Check the request and the photos now (ValueError, one sentence), then train in a thread.

        `photos` are the crops already prepared (and pruned) by the tab; without them they are prepared here.
        With `full`, Full DreamBooth writes weights/NAME.safetensors, at its own learning rate unless one was set.
        """
        # 1. refuse before any slow work, in the caller's thread (on Ray, the worker checks the model and its GPU)
        self._check_free()
        req = check_request(req)
        remote = self.remote
        if full:
            refusal = None if remote else limits.full_dreambooth_refusal(self.manager.device,
                                                                          limits.model_kind(self.manager))
            if refusal:
                raise ValueError(refusal)
            req.name = check_model_name(req.name, Path(self.manager.weights_dir), req.overwrite)
            if req.unet_lr == TrainRequest.unet_lr:
                req.unet_lr = req.text_encoder_lr = FULL_UNET_LR
        else:
            req.name = check_name(req.name, self.manager.loras.folder, req.overwrite)
        if not remote:
            limits.check_family(self.manager.base().unet.config)
        photos = photos or prepare_photos(Path(req.images), req.class_word, req.resolution, req.captions)
        root = root or output_root()
        # 2. the steps run in a thread of their own
        steps = req.steps or default_steps(len(photos.photos))

        def run(control: RunControl, on_progress) -> TrainResult | FullResult:
            if remote:
                return start_ray_training(self.manager, req, photos, root=root, full=full,
                                          options=self.ray_options).follow(control, on_progress)
            train = train_full if full else train_lora
            return train(self.manager, req, control, on_progress, photos=photos, root=root)

        job = self._launch(req.name, req.class_word, steps, control, run, full=full)
        job.notes.extend(photos.notes)
        return job

    def resume(self, name: str, control: RunControl | None = None, root: Path | None = None) -> TrainJob:
        """Continue the training `name` from its last checkpoint; refused at once when there is none."""
        self._check_free()
        root = root or output_root()
        run_dir = run_folder((name or "").strip(), root)
        if not name or not (run_dir / "run.json").is_file():
            raise ValueError(f"There is no training named {name or '(no name)'} to resume; start a new one.")
        if not checkpoints.checkpoints(run_dir / "checkpoints"):
            raise ValueError(f"{name} has no checkpoint yet; start the training again.")
        saved = json.loads((run_dir / "run.json").read_text())["request"]
        steps = saved.get("steps") or default_steps(len(list((run_dir / "photos").glob("*.png"))))

        def run(control: RunControl, on_progress) -> TrainResult:
            if self.remote:
                return start_ray_training(self.manager, root=root, resume=name,
                                          options=self.ray_options).follow(control, on_progress)
            return resume_lora(self.manager, name, control, on_progress, root=root)

        job = self._launch(name, saved["class_word"], steps, control, run, earlier_losses(run_dir / "loss.csv"))
        return job

    @property
    def remote(self) -> bool:
        """True with --ray: the trainings run as Ray tasks, not in this process."""
        return getattr(self.manager, "runner", None) is not None

    @property
    def ray_options(self) -> dict | None:
        """The Ray options of a training task (engine.backends.ray_train.task_options), from the runner if set."""
        return getattr(self.manager.runner, "train_options", None)

    def get(self, job_id: str) -> TrainJob | None:
        return self._jobs.get(job_id)

    def stop(self, job_id: str) -> TrainJob | None:
        """Stop after the current step: a checkpoint and a usable LoRA of the steps done are written."""
        job = self.get(job_id)
        if job is not None:
            job.control.stop()
        return job

    def running(self) -> TrainJob | None:
        return next((job for job in self._jobs.values() if not job.finished), None)

    def _check_free(self) -> None:
        job = self.running()
        if job is not None:
            raise ValueError(f"A training is already running ({job.name}, step {job.step} of {job.steps}); wait "
                             "for it to end or stop it, then start this one.")

    def _launch(self, name: str, class_word: str, steps: int, control: RunControl | None,
                run: Callable[..., TrainResult | FullResult], losses: list | None = None,
                full: bool = False) -> TrainJob:
        job = TrainJob(uuid.uuid4().hex[:12], name, control or RunControl(), class_word, steps=steps,
                       losses=losses or [], full=full)
        if losses:
            job.step, job.loss = losses[-1]
        with self._lock:
            self._check_free()
            self._jobs[job.id] = job
        threading.Thread(target=self._work, args=(job, run), name=f"train-{name}", daemon=True).start()
        return job

    def _work(self, job: TrainJob, run: Callable[..., TrainResult | FullResult]) -> None:
        remote = self.remote  # on Ray the training takes no generation slot of this process
        turn = Turn(self.manager.gate, job.control)

        def on_progress(progress: TrainProgress) -> None:
            job.record(progress)
            if not remote:
                turn.give_way()

        try:
            with turn if not remote else contextlib.nullcontext():
                job.state = "training"
                result = run(job.control, on_progress)
            job.result, job.step, job.steps = result, result.steps_done, result.steps
            job.notes.extend(n for n in result.notes if n not in job.notes)
            job.samples.extend(p for p in result.samples if p not in job.samples)  # the last ones come with the end
            job.eta_s = 0.0 if not result.stopped else None
            job.state = "stopped" if result.stopped else "done"
        except ValueError as exc:
            job.error, job.state = str(exc), "failed"
        except Exception as exc:  # noqa: BLE001 - the job reports it; the server keeps serving
            log.exception("training %s failed", job.name)
            job.error = f"an error on the server ({type(exc).__name__}); the server's log has the details."
            job.state = "failed"
        finally:
            job.elapsed_s = time.monotonic() - job.started
            job.ended.set()


def earlier_losses(path: Path) -> list[tuple[int, float]]:
    """(step, loss) from a run's loss.csv, written with each checkpoint: a resumed curve starts where it stopped."""
    if not path.is_file():
        return []
    rows = [line.split(",") for line in path.read_text().splitlines()[1:] if line.strip()]
    return [(int(r[0]), float(r[1])) for r in rows]


_registries: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_registries_lock = threading.Lock()


def trainings(manager) -> TrainJobs:
    """The one registry of `manager`'s trainings, shared by the tab and the REST API."""
    with _registries_lock:
        if manager not in _registries:
            _registries[manager] = TrainJobs(manager)
        return _registries[manager]
