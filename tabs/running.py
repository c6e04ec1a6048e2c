"""Running a job from a tab: the run button, a Stop shown only while a run goes, a progress bar that keeps
counting and says how the run ended, and the worker thread that streams an engine job's updates."""
from __future__ import annotations

import html
import inspect
import queue
import threading
import time
from dataclasses import dataclass
from functools import wraps
from typing import Callable, Iterator

import gradio as gr

from engine.image.request import RunControl, StepUpdate
from engine.jobs.gate import BUSY, Busy, Gate
from tabs.session import SessionControl, user_error, user_errors

QUEUE_ID = "generate"  # every generating listener shares this queue


def progress_html(control: RunControl | None) -> str:
    """One progress bar with the step, the elapsed time and an ETA, all computed here so they hold between updates;
    once the run ended, what happened, in words that stay."""
    p = getattr(control, "progress", None)
    if p is None or p.clicked is None:
        return ""
    now = time.monotonic()
    if p.finished is not None:
        return _bar(p.fraction if p.failed or p.cancelled else 1.0, ended_text(control), done=True,
                    failed=p.failed)
    if p.started is None:
        return _bar(0.0, f"Waiting for a free slot… {_seconds(now - p.clicked)}")
    elapsed = now - p.started
    if p.eta is None:
        left = "time left known after the first step"
    else:
        remaining = max(p.eta - (now - p.updated), 0.0)
        left = f"about {_seconds(remaining)} left" if remaining >= 1 else "almost done"
    stopping = "Stopping · " if control.stopped else ""
    return _bar(p.fraction, f"{stopping}{p.text} · {_seconds(elapsed)} elapsed · {left}")


def ended_text(control) -> str:
    """How a run ended: done, stopped, stopped before it began, or failed and why."""
    p = control.progress
    took = p.finished - p.started if p.started is not None else 0.0
    if p.cancelled:
        return "Stopped before it started."
    if p.failed:
        if not p.message:
            return f"Failed after {_seconds(took)}."
        return f"Failed after {_seconds(took)}: {p.message}" if took >= 1 else f"Failed: {p.message}"
    if getattr(control, "stopped", False):
        return f"Stopped after {_seconds(took)}."
    return f"Done in {_seconds(took)}."


def _seconds(value: float) -> str:
    value = max(value, 0.0)
    if value < 60:
        return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"
    minutes, secs = divmod(int(round(value)), 60)
    return f"{minutes} min {secs:02d} s"


def _bar(fraction: float, text: str, done: bool = False, failed: bool = False) -> str:
    state = " ds-done" if done else ""
    said = " ds-failed" if failed else ""
    return (f'<div class="ds-bar{state}" role="progressbar" aria-valuemin="0" aria-valuemax="100" '
            f'aria-valuenow="{fraction * 100:.0f}"><div class="ds-fill" style="width:{fraction * 100:.1f}%"></div>'
            f'</div><div class="ds-bar-text{said}">{html.escape(text)}</div>')


def step_of(update) -> str:
    """"step 7 of 13 (25 steps × strength 0.55)": a schedule that strength shortened, in the fields' own numbers."""
    text = f"step {update.step} of {update.total_steps}"
    steps, strength = getattr(update, "num_inference_steps", None), getattr(update, "strength", None)
    if steps and strength is not None and update.total_steps != steps:
        text += f" ({steps} steps × strength {strength:g})"
    return text


def describe_step(update: StepUpdate):
    """Progress text for image jobs: image i of n, step s of t."""
    return update.fraction, f"Image {update.image_index + 1}/{update.batch_count}, {step_of(update)}", update.preview


def stream(job: Callable, control: RunControl, progress: gr.Progress, gate: Gate,
           describe: Callable = describe_step) -> Iterator[tuple[object | None, object | None]]:
    """Run an engine job in a worker thread; yield (update, None) when there is a preview, then (None, result).

    The job waits for a slot at `gate`, shared with the REST API. `describe(update)` gives
    (fraction, text, preview image or None) for the progress bar and the preview.
    """
    updates: queue.Queue = queue.Queue()
    outcome: dict = {}

    def work():
        try:
            with gate.slot():
                outcome["result"] = job(updates.put, control)
        except BaseException as exc:  # re-raised in the handler's thread below
            outcome["error"] = exc
        finally:
            updates.put(None)

    control.reset()
    if isinstance(control, SessionControl):
        control.begin()
    threading.Thread(target=work, daemon=True).start()
    try:
        while (update := updates.get()) is not None:
            fraction, text, preview = describe(update)
            progress(fraction, desc=text)
            if isinstance(control, SessionControl):
                control.update(fraction, text)
            if preview is not None:
                yield preview, None
    finally:
        if not outcome:  # the client went away mid-run: stop the worker so the queue slot frees now
            control.stop()
        if isinstance(control, SessionControl):
            control.end(failed="error" in outcome)
    if isinstance(outcome.get("error"), Busy):
        raise user_error(BUSY)
    if "error" in outcome:
        with user_errors():
            raise outcome["error"]
    yield None, outcome["result"]


def run_buttons(task: str, label: str) -> tuple[gr.Button, gr.Button]:
    """The primary run button and its Stop (#<task>-run, #<task>-stop); Stop stays hidden until a run starts."""
    run = gr.Button(label, variant="primary", elem_id=f"{task}-run", elem_classes=["ds-run"])
    stop = gr.Button("Stop", variant="stop", visible=False, elem_id=f"{task}-stop")
    return run, stop


@dataclass
class ProgressBar:
    """A tab's progress bar and the timer that redraws it while a run goes (both live inside the tab)."""

    html: gr.HTML
    timer: gr.Timer
    ticking: bool = False


def progress_bar(task: str) -> ProgressBar:
    """Progress, elapsed time and ETA for this tab's run (#<task>-progress); empty until the first run."""
    return ProgressBar(gr.HTML("", elem_id=f"{task}-progress", elem_classes=["ds-progress"]),
                       gr.Timer(0.5, active=False))


def wire_run(trigger, fn: Callable, *, inputs: list, outputs: list, api_name, control: gr.State,
             stop: gr.Button, bar: ProgressBar, concurrency_id: str | None = QUEUE_ID,
             concurrency_limit: int | None | str = "default") -> None:
    """Wire a run button (or a textbox's submit) to a streaming handler, with its progress bar and Stop.

    Gradio's own progress overlay is hidden: it covers the live preview and resets its timer at every preview.
    Instead the bar's timer redraws it from the session's `RunProgress` twice a second while the run goes.
    However the run ends (done, stopped, refused before it began, failed, busy), the bar says so and stops, Stop
    hides and the run button is free: Gradio 6 runs `.then` only after a success, so `.failure` does it too.
    A run that must not hold the generating queue (a training) passes its own `concurrency_id`.
    """
    helper = dict(inputs=control, outputs=[bar.timer, stop, bar.html], queue=False, api_name=False,
                  show_progress="hidden")
    trigger(run_clicked, **helper)
    trigger(None, js=bring_into_view(bar.html.elem_id), queue=False, api_name=False, show_progress="hidden")
    event = trigger(ends_its_run(fn), inputs=inputs, outputs=outputs, api_name=api_name,
                    concurrency_id=concurrency_id, concurrency_limit=concurrency_limit, show_progress="hidden")
    event.then(run_ended, **helper)
    event.failure(run_ended, **helper)
    if not bar.ticking:
        bar.timer.tick(tick, **helper)
        stop.click(stop_pressed, **helper)
        bar.ticking = True


def bring_into_view(elem_id: str) -> str:
    """Browser code that scrolls a run's progress bar and preview into view when the bar is off-screen: on a phone,
    where they sit far below the button, and under the X/Y/Z plot's button, low in the settings column."""
    return f"""() => {{
        const bar = document.getElementById({elem_id!r});
        if (!bar) return;
        const box = bar.getBoundingClientRect();
        if (box.top >= 0 && box.bottom <= window.innerHeight) return;
        (bar.closest('.row') || bar).scrollIntoView({{behavior: 'smooth', block: 'start'}});
    }}"""


def run_clicked(c: SessionControl):
    """The bar starts counting and Stop shows as soon as the button is pressed, before the run has a slot."""
    c.clicked()
    return gr.Timer(active=True), gr.Button(visible=True), progress_html(c)


def run_ended(c: SessionControl):
    """After the handler, whichever way it ended: the bar says how, and stops; Stop hides."""
    if c.running():  # the handler never ran: Gradio refused the call (a full queue) or the page lost it
        c.fail("The app did not take the run (it may be busy); try again in a moment.")
    return tick(c)


def tick(c: SessionControl):
    """The bar redrawn; once the run has ended the timer stops itself and Stop hides, whatever else happened."""
    if c.running():
        return gr.skip(), gr.skip(), progress_html(c)
    return gr.Timer(active=False), gr.Button(visible=False), progress_html(c)


def stop_pressed(c: SessionControl):
    """Stop while waiting for a slot ends the run at once; a run that goes ends itself, saying "Stopped"."""
    c.stop()
    return tick(c)


def ends_its_run(fn: Callable) -> Callable:
    """`fn` as a handler that records how its run ended on the session's control, for the bar to say.

    A run Stop dropped while it waited is not started; an error (a refused input before the engine runs, an engine
    error, a busy answer, a worker that stopped) leaves its sentence on the bar. The error still reaches Gradio.
    """
    def session(args, kwargs) -> SessionControl | None:
        return next((a for a in (*args, *kwargs.values()) if isinstance(a, SessionControl)), None)

    def failed(control: SessionControl | None, exc: Exception) -> None:
        if control is not None:
            control.fail(exc.message if isinstance(exc, gr.Error) else
                         f"an error on the server ({type(exc).__name__}); the server's log has the details.")

    def dropped(control: SessionControl | None) -> bool:
        if control is None or not control.drop_next:
            return False
        control.drop_next = False
        return True

    if inspect.isgeneratorfunction(fn):
        @wraps(fn)
        def run(*args, **kwargs):
            control = session(args, kwargs)
            if dropped(control):
                return
            try:
                yield from fn(*args, **kwargs)
            except Exception as exc:
                failed(control, exc)
                raise
            if control is not None and control.running():  # a handler that returned without running anything
                control.end(failed=False)
    else:
        @wraps(fn)
        def run(*args, **kwargs):
            control = session(args, kwargs)
            if dropped(control):
                return gr.skip()
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                failed(control, exc)
                raise
    return run


def wire_stop(stop: gr.Button, control: gr.State, api_name: str) -> None:
    stop.click(lambda c: c.stop(), inputs=control, outputs=None, queue=False, api_name=api_name)
