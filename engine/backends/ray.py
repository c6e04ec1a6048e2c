"""Run engine jobs on Ray Serve replicas: the front end's side of the wire, and the Stop board both sides share.

A job travels as a `JobCall`: the job's name (engine.jobs.runner.JOBS), its arguments with the manager, the Stop
switch and every callback replaced by markers, and the model to run it on. The replica streams back plain
tuples: ("started", replica, pid), ("call", slot, args, kwargs) for each progress callback, then ("result",
value) or ("error", exception). Stop reaches the replica through a small named actor (`StopBoard`) on which
the replica waits while its job runs. Ray itself is imported only when this back end is used.
"""
from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from engine.files.outputs import output_root
from engine.image.request import RunControl
from engine.jobs.gate import BUSY, Busy
from engine.jobs.runner import job_name

INSTALL_HINT = 'The Ray back end needs Ray Serve: pip install "ray[serve]==2.60.*".'
WORKER_STOPPED = "The worker stopped; try again."
NAMESPACE = "diffusion_studio"
STOP_BOARD = "stop-board"
MAX_INLINE_UPLOAD = 64 * 1024 * 1024  # input images outside the outputs folder travel as bytes up to this size
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
log = logging.getLogger("diffusion_studio")


class WorkerStopped(ValueError):
    """The replica running a job died (or became unreachable) before it answered; the job can be tried again."""

    def __init__(self, message: str = WORKER_STOPPED):
        super().__init__(message)


def import_ray():
    try:
        import ray
        from ray import serve
    except ImportError:
        raise ValueError(INSTALL_HINT) from None
    return ray, serve


@dataclass(frozen=True)
class Slot:
    """Where the replica puts its own object: the manager, the Stop switch, or callback number `index`."""

    kind: str  # "manager", "control" or "callback"
    index: int = 0


@dataclass
class JobCall:
    """One engine job as it travels to a replica."""

    job: str  # a name from engine.jobs.runner.JOBS
    args: tuple
    kwargs: dict
    model: str | None  # the front end's chosen model; the replica switches to it first
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class Placement:
    """Where a running job landed: the replica's id and its process (for the status line and for tests)."""

    replica: str
    pid: int


def pack(fn, manager, args: tuple, kwargs: dict) -> tuple[JobCall, list, RunControl | None]:
    """The call to send, the callbacks it refers to, and the Stop switch to watch."""
    callbacks: list = []
    controls: list[RunControl] = []

    def marker(value):
        if value is manager:
            return Slot("manager")
        if isinstance(value, RunControl):
            controls.append(value)
            return Slot("control")
        if callable(value) and not isinstance(value, type):
            callbacks.append(value)
            return Slot("callback", len(callbacks) - 1)
        return portable(value)

    call = JobCall(job_name(fn), tuple(marker(a) for a in (manager, *args)),
                   {k: marker(v) for k, v in kwargs.items()}, getattr(manager, "model_name", None))
    return call, callbacks, controls[0] if controls else None


def portable(value):
    """An uploaded image outside the outputs folder travels as its bytes, so a replica on another node can read it.

    Other paths stay paths (plans, video inputs, and everything in the outputs folder, where video jobs write);
    on many nodes they need shared storage (README).
    """
    if not isinstance(value, (str, Path)) or not Path(value).is_absolute():
        return value
    if Path(value).suffix.lower() not in IMAGE_SUFFIXES:
        return value
    path = Path(value)
    try:
        if not path.is_file() or path.stat().st_size > MAX_INLINE_UPLOAD:
            return value
        if output_root() in path.resolve().parents:
            return value
        return path.read_bytes()
    except OSError:
        return value


def unpack(call: JobCall, manager, control: RunControl, send) -> tuple[tuple, dict]:
    """The replica's side of `pack`: its own manager and Stop switch, and callbacks that stream their calls back."""
    def real(value):
        if not isinstance(value, Slot):
            return value
        if value.kind == "manager":
            return manager
        if value.kind == "control":
            return control
        return lambda *a, **k: send(("call", value.index, a, k))

    return tuple(real(a) for a in call.args), {k: real(v) for k, v in call.kwargs.items()}


class StopBoard:
    """A named actor holding one event per running job: the replica waits on it, the front end sets it."""

    def __init__(self):
        import asyncio

        self._asyncio = asyncio
        self._events: dict = {}
        self._stopped: set[str] = set()

    def _event(self, job_id: str):
        return self._events.setdefault(job_id, self._asyncio.Event())

    async def wait(self, job_id: str) -> bool:
        """Return when the job is stopped (True) or finished (False)."""
        await self._event(job_id).wait()
        return job_id in self._stopped

    async def stop(self, job_id: str) -> None:
        self._stopped.add(job_id)
        self._event(job_id).set()

    async def forget(self, job_id: str) -> None:
        self._event(job_id).set()
        self._events.pop(job_id, None)
        self._stopped.discard(job_id)


def stop_board():
    """The cluster's one Stop board, created by whoever asks first; it outlives any replica."""
    ray, _ = import_ray()
    actor = ray.remote(num_cpus=0, max_restarts=-1)(StopBoard)
    return actor.options(name=STOP_BOARD, namespace=NAMESPACE, get_if_exists=True, lifetime="detached").remote()


class RayRunner:
    """Runs each engine job on a replica of the Serve deployment behind `handle`, streaming its progress back.

    `running` maps each job in flight to the replica that took it.
    """

    def __init__(self, handle, board=None):
        self.handle = handle.options(stream=True)
        self.board = board or stop_board()
        self.running: dict[str, Placement] = {}
        self.train_options: dict | None = None  # Ray options of training tasks; None: a GPU where the cluster has one

    def run(self, fn, manager, *args, **kwargs):
        """Call `fn(manager, *args, **kwargs)` on a replica; the result names the replica as `.replica`."""
        if _in_event_loop():  # Serve's blocking stream refuses a thread that runs an event loop: use another thread
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(1) as pool:
                return pool.submit(self._run, fn, manager, *args, **kwargs).result()
        return self._run(fn, manager, *args, **kwargs)

    def _run(self, fn, manager, *args, **kwargs):
        ray, serve = import_ray()
        from ray.serve.exceptions import BackPressureError

        call, callbacks, control = pack(fn, manager, args, kwargs)
        done = threading.Event()
        watcher = threading.Thread(target=self._forward_stop, args=(call.job_id, control, done), daemon=True)
        placement = None
        try:
            watcher.start()
            for message in self.handle.run.remote(call):
                kind = message[0]
                if kind == "started":
                    placement = self.running[call.job_id] = Placement(message[1], message[2])
                elif kind == "call":
                    callbacks[message[1]](*message[2], **message[3])
                elif kind == "error":
                    raise message[1]
                elif kind == "result":
                    return _named(message[1], placement)
            raise WorkerStopped()  # the stream ended without an answer
        except BackPressureError:
            raise Busy(BUSY) from None
        except ray.exceptions.RayError as exc:
            log.warning("A Ray worker stopped during a %s job: %s", call.job, type(exc).__name__)
            raise WorkerStopped() from exc
        finally:
            done.set()
            self.running.pop(call.job_id, None)

    def _forward_stop(self, job_id: str, control: RunControl | None, done: threading.Event) -> None:
        """Tell the board when the user presses Stop (or the client goes away) while the job runs."""
        if control is None:
            return
        while not done.wait(0.1):
            if control.stopped:
                self.board.stop.remote(job_id)
                return


def _in_event_loop() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _named(result, placement: Placement | None):
    """The result with the replica that made it, for the REST reply's `replica`."""
    if placement is not None:
        try:
            result.replica = placement.replica
        except AttributeError:
            pass
    return result
