"""A browser session's run: its Stop switch (which also reaches a ZeroGPU worker) and progress record, and the
one way a user's mistake becomes a sentence on the page."""
from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from engine.image.request import RunControl

STOP_DIR = Path(tempfile.gettempdir()) / "diffusion-studio-stop"
log = logging.getLogger("diffusion_studio")


@dataclass
class RunProgress:
    """Where a session's run stands, written by the run and read by the progress bar's timer.

    Times are `time.monotonic()` seconds. `eta` is the time left estimated at `updated`; the bar counts it down
    between updates, so it holds instead of vanishing.
    """

    clicked: float | None = None  # the run button was pressed (the run may still wait for the queue)
    started: float | None = None  # the run began
    updated: float | None = None  # the last progress update
    fraction: float = 0.0
    text: str = ""
    first: tuple[float, float] | None = None  # (time, fraction) of the first update: the pace is measured from it
    eta: float | None = None
    finished: float | None = None
    failed: bool = False
    message: str = ""  # why the run failed, shown on the bar after it ends (the toast fades, the bar stays)
    cancelled: bool = False  # Stop was pressed while the run still waited for a slot, so it never ran


class SessionControl(RunControl):
    """A per-browser-session Stop switch and progress record; gr.State deep-copies its initial value per session."""

    def __init__(self):
        super().__init__()
        self.progress = RunProgress()
        self.stop_file = new_stop_file()  # how Stop reaches a ZeroGPU worker, which gets a copy of the session
        self.drop_next = False  # Stop came while the run waited for a slot: skip it when its turn comes

    def __deepcopy__(self, memo):
        return SessionControl()

    def __reduce__(self):
        """Pickled (into a ZeroGPU worker) as a Stop switch that watches this session's stop file."""
        return StopFileControl, (self.stop_file,)

    def stop(self) -> None:
        super().stop()
        touch(self.stop_file)
        if self.waiting():  # nothing to stop yet: the run is dropped when its turn comes
            self.progress.finished, self.progress.cancelled = time.monotonic(), True
            self.drop_next = True

    def reset(self) -> None:
        super().reset()
        Path(self.stop_file).unlink(missing_ok=True)

    def clicked(self) -> None:
        """The run button was pressed; a run that already began is left alone."""
        if self.progress.started is None or self.progress.finished is not None:
            self.progress = RunProgress(clicked=time.monotonic())
            self.drop_next = False

    def begin(self) -> None:
        now = time.monotonic()
        self.progress = RunProgress(clicked=self.progress.clicked or now, started=now, text="Starting")

    def update(self, fraction: float, text: str) -> None:
        now, p = time.monotonic(), self.progress
        fraction = min(max(float(fraction), 0.0), 1.0)
        if p.first is None:
            p.first = (now, fraction)
        since, done = p.first
        if fraction > done:  # the pace after the first step leaves out the warm-up
            p.eta = (now - since) / (fraction - done) * (1 - fraction)
        elif fraction > 0 and p.started is not None:
            p.eta = (now - p.started) / fraction * (1 - fraction)
        p.updated, p.fraction, p.text = now, fraction, text

    def end(self, failed: bool) -> None:
        self.progress.finished, self.progress.failed = time.monotonic(), failed

    def waiting(self) -> bool:
        """The run button was pressed and the run has not begun."""
        p = self.progress
        return p.clicked is not None and p.started is None and p.finished is None

    def running(self) -> bool:
        """Waiting for a slot or going: the bar keeps counting and Stop shows."""
        return self.progress.clicked is not None and self.progress.finished is None

    def fail(self, message: str) -> None:
        """The run ended with an error, before or after it began; the bar keeps `message`."""
        p = self.progress
        p.finished, p.failed, p.message = p.finished or time.monotonic(), True, message


def user_error(message: str) -> gr.Error:
    """The sentence for the user, logged in one line: a user's mistake is not a bug, so no traceback."""
    log.info("user error: %s", message)
    return gr.Error(message, print_exception=False)


@contextmanager
def user_errors():
    """Engine ValueErrors become gr.Error so the user sees the sentence and the server keeps serving."""
    try:
        yield
    except ValueError as exc:
        raise user_error(str(exc)) from exc


class StopFileControl(RunControl):
    """A session's Stop switch as it arrives in a GPU worker: stopped when the session's stop file exists."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def stop(self) -> None:
        super().stop()
        touch(self.path)

    def reset(self) -> None:
        super().reset()
        Path(self.path).unlink(missing_ok=True)

    @property
    def stopped(self) -> bool:
        return super().stopped or os.path.exists(self.path)

    def __reduce__(self):
        return StopFileControl, (self.path,)


def new_stop_file() -> str:
    return str(STOP_DIR / f"{uuid.uuid4().hex}.stop")


def touch(path: str) -> None:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).touch()
    except OSError:  # the in-process switch still works
        pass
