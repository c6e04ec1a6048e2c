"""Trainings as Ray tasks: with `--ray`, a training runs on a worker of its own (one GPU where the cluster has GPUs),
which loads the model itself, while the front end, holding no weights, follows its progress.

The pieces:
- `TrainBoard`, a small actor per training: the worker appends its progress to it, the front end reads what is
  new and sets its Stop flag; a thread beside the training turns that flag into the training's RunControl.
- `train_task`, the Ray task: a PipelineManager for the front end's model and options, then engine.train's
  `train_lora`, `resume_lora` or `train_full`, exactly as in one process.
- `start_ray_training()` starts both and answers a `RayTraining`, whose `follow()` feeds the progress to a callback
  and returns the result.

Where the files land: the LoRA travels back as bytes and the front end writes it into its own LoRA folder (the one
writer), so a training finishes on any worker, shared disk or not. Sample images travel back the same way, into the
run folder's path under the front end's outputs folder. The run folder (photos, checkpoints, loss CSV) is written
by the worker at that same path: Resume on a cluster of several machines needs the outputs folder on shared storage,
as video jobs do. Full DreamBooth writes its model (2 GB) straight into the weights folder, which the replicas
already share since they load models from it.
"""
from __future__ import annotations

import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.backends.ray import WorkerStopped, import_ray
from engine.image.request import RunControl
from engine.train.full import FullResult, train_full
from engine.train.loop import TrainProgress, TrainResult, resume_lora, train_lora
from engine.train.photos import PhotoSet
from engine.train.request import TrainRequest

POLL_S = 0.25  # how often the front end reads the board, and the worker looks for Stop


@dataclass
class TrainSpec:
    """One training as it travels to its worker: the model to load, the request or the run to resume, and where."""

    model: str
    options: object  # the front end's RuntimeOptions: the worker loads the model the same way
    weights_dir: str
    root: str  # the front end's outputs folder; the run folder is root/train/NAME
    request: TrainRequest | None = None
    photos: PhotoSet | None = None  # the crops prepared (and pruned) in the front end
    resume: str | None = None  # the name of a run to continue from its last checkpoint
    full: bool = False  # Full DreamBooth: a model file in the weights folder


class TrainBoard:
    """One training's progress, appended by its worker and read by the front end, and its Stop flag."""

    def __init__(self):
        self._events: list = []
        self._stopped = False

    def report(self, event: tuple) -> None:
        self._events.append(event)

    def read(self, since: int) -> list:
        return self._events[since:]

    def stop(self) -> None:
        self._stopped = True

    def stopped(self) -> bool:
        return self._stopped


def train_task(board, spec: TrainSpec) -> dict:
    """The worker's side: train as in one process, report each step to `board`, and answer the result.

    Answers {"result": TrainResult | FullResult, "lora": bytes | None, "files": {relative path: bytes}}, or
    {"error": sentence} when the training refused to start (the ValueError a local training raises).
    """
    ray, _ = import_ray()
    from engine.pipeline.manager import PipelineManager
    from engine.train import limits

    root = Path(spec.root)
    scratch = Path(tempfile.mkdtemp(prefix="train-lora-"))  # the LoRA goes back as bytes; the front end writes it
    control, finished, sent = RunControl(), threading.Event(), []

    def watch_stop():
        while not finished.wait(POLL_S):
            if ray.get(board.stopped.remote()):
                control.stop()
                return

    def on_progress(progress: TrainProgress) -> None:
        sent.append(board.report.remote((progress, files_of(progress.samples, root))))

    threading.Thread(target=watch_stop, name="train-stop", daemon=True).start()
    try:
        manager = PipelineManager(spec.model, spec.options, weights_dir=Path(spec.weights_dir), lora_dir=scratch)
        if spec.full:
            refusal = limits.full_dreambooth_refusal(manager.device, limits.model_kind(manager))
            if refusal:
                raise ValueError(refusal)
            result = train_full(manager, spec.request, control, on_progress, photos=spec.photos, root=root)
        elif spec.resume:
            result = resume_lora(manager, spec.resume, control, on_progress, root=root)
        else:
            result = train_lora(manager, spec.request, control, on_progress, photos=spec.photos, root=root)
        lora = None if spec.full else result.lora.read_bytes()
        if sent:
            ray.get(sent[-1])  # the board holds every step before the result is seen
        return {"result": result, "lora": lora, "files": files_of(result.samples, root)}
    except ValueError as exc:
        return {"error": str(exc)}
    finally:
        finished.set()
        shutil.rmtree(scratch, ignore_errors=True)


def files_of(paths: list[Path], root: Path) -> dict[str, bytes]:
    """The bytes of the files under `root` (samples), keyed by their path relative to it."""
    out = {}
    for path in paths:
        try:
            out[Path(path).relative_to(root).as_posix()] = Path(path).read_bytes()
        except (ValueError, OSError):
            pass
    return out


def write_files(files: dict[str, bytes], root: Path) -> None:
    """Put the worker's files at the same paths under this machine's `root` (already there on shared storage)."""
    for relative, content in files.items():
        path = root / relative
        if path.is_file() and path.stat().st_size == len(content) and path.read_bytes() == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(content)
        temporary.replace(path)


def task_options(options: dict | None = None) -> dict:
    """Ray options of the training task: one GPU where the cluster has one, else one CPU, unless given."""
    ray, _ = import_ray()
    if options is None:
        options = {"num_gpus": 1} if ray.cluster_resources().get("GPU", 0) >= 1 else {"num_cpus": 1}
    return {**options, "max_retries": 0}  # a dead worker is reported, not silently trained again from the start


class RayTraining:
    """A training running as a Ray task: its progress so far, Stop, and its result with the LoRA written here."""

    def __init__(self, board, ref, root: Path, lora_dir: Path):
        self.board, self.ref, self.root, self.lora_dir = board, ref, root, lora_dir
        self._seen = 0

    def progress(self) -> list[TrainProgress]:
        """The steps reported since the last call, their samples written under the outputs folder."""
        ray, _ = import_ray()
        events = ray.get(self.board.read.remote(self._seen))
        self._seen += len(events)
        for _, files in events:
            write_files(files, self.root)
        return [progress for progress, _ in events]

    def stop(self) -> None:
        """Stop after the current step: the worker writes a checkpoint and a LoRA of the steps done."""
        self.board.stop.remote()

    def done(self) -> bool:
        ray, _ = import_ray()
        ready, _ = ray.wait([self.ref], timeout=0)
        return bool(ready)

    def result(self) -> TrainResult | FullResult:
        """Wait for the end; the LoRA is written into this machine's LoRA folder. A refusal raises its ValueError."""
        ray, _ = import_ray()
        try:
            answer = ray.get(self.ref)
        except ray.exceptions.RayTaskError:
            raise  # an error in the training itself: the job reports it as a server error
        except ray.exceptions.RayError as exc:
            raise WorkerStopped() from exc
        finally:
            ray.kill(self.board)
        if "error" in answer:
            raise ValueError(answer["error"])
        result = answer["result"]
        write_files(answer["files"], self.root)
        if answer["lora"] is not None:
            path = Path(self.lora_dir) / result.lora.name
            write_files({path.name: answer["lora"]}, path.parent)
            result.lora = path
        return result

    def follow(self, control: RunControl | None = None, on_progress: Callable[[TrainProgress], None] | None = None,
               every: float = POLL_S) -> TrainResult | FullResult:
        """Feed each step to `on_progress` as it comes, pass Stop on, and return the result."""
        stop_sent = False
        while True:
            ended = self.done()  # read after this, the board holds every step
            for progress in self.progress():
                if on_progress is not None:
                    on_progress(progress)
            if control is not None and control.stopped and not stop_sent:
                self.stop()
                stop_sent = True
            if ended:
                return self.result()
            time.sleep(every)


def start_ray_training(manager, req: TrainRequest | None = None, photos: PhotoSet | None = None, *,
                       root: Path, resume: str | None = None, full: bool = False,
                       options: dict | None = None) -> RayTraining:
    """Start a training as its own Ray task on the front end's model and options; Ray must be connected already.

    `req` and `photos` start a new training (`full` for Full DreamBooth), `resume` continues the run of that name.
    `options` are the task's Ray options (default: {"num_gpus": 1} where the cluster has GPUs, else
    {"num_cpus": 1}).
    """
    ray, _ = import_ray()
    if not ray.is_initialized():
        raise ValueError("Training on Ray needs the app connected to Ray (python app.py --ray).")
    board = ray.remote(num_cpus=0)(TrainBoard).remote()
    spec = TrainSpec(manager.model_name, manager.options, str(manager.weights_dir), str(root), req, photos, resume,
                     full)
    ref = ray.remote(train_task).options(**task_options(options)).remote(board, spec)
    return RayTraining(board, ref, Path(root), Path(manager.loras.folder))
