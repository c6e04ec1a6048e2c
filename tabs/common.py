"""Widgets and plumbing every generating tab shares: engine errors to gr.Error, progress streaming, saving."""
from __future__ import annotations

import html
import inspect
import logging
import queue
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Callable, Iterator

import gradio as gr

from engine.files import pnginfo
from engine.files.outputs import next_path, task_dir
from engine.image.request import MAX_BATCH, MAX_STEPS, RunControl, RunResult, StepUpdate
from engine.jobs.gate import BUSY, Busy, Gate
from engine.pipeline.schedulers import DEFAULT_SAMPLER, sampler_names
from engine.video.denoise import write_denoise_video
from tabs import gpu
from widgets.image_upload import readable, upload_path

QUEUE_ID = "generate"  # every generating listener shares this queue
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
        self.stop_file = gpu.new_stop_file()  # how Stop reaches a ZeroGPU worker, which gets a copy of the session
        self.drop_next = False  # Stop came while the run waited for a slot: skip it when its turn comes

    def __deepcopy__(self, memo):
        return SessionControl()

    def __reduce__(self):
        """Pickled (into a ZeroGPU worker) as a Stop switch that watches this session's stop file."""
        return gpu.StopFileControl, (self.stop_file,)

    def stop(self) -> None:
        super().stop()
        gpu.touch(self.stop_file)
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


def on_gpu(fn: Callable, seconds: Callable[..., int] | str | None = None, inner: bool = False) -> Callable:
    """On Hugging Face ZeroGPU hardware, hold a GPU for each call, asking `seconds(*args)` (or a tab's estimate, by
    name); anywhere else, leave the function alone (tabs.gpu)."""
    return gpu.on_gpu(fn, seconds, inner)


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


def image_outputs(job: Callable, control: RunControl, progress: gr.Progress, gate: Gate, task: str,
                  denoise_video: bool = False) -> Iterator[tuple]:
    """An image tab's whole run: previews while it goes, then the saved PNGs, seeds and notes, and PNG info.

    With `denoise_video`, a fifth output carries the denoising video (Text to image).
    """
    for preview, result in stream(job, control, progress, gate):
        extra = (gr.skip(),) if denoise_video else ()
        if result is None:
            yield (gr.skip(), preview, gr.skip(), gr.skip(), *extra)
            continue
        with user_errors():
            paths = save_results(result.images, task)
            if denoise_video:
                extra = (save_denoise_video(result, task),)
        yield (paths, None, result_info(result), first_parameters(result), *extra)


def save_results(items, task: str) -> list[str]:
    """Write each result (.image, .seed, .parameters) as a PNG with its parameters, so downloads keep the PNG info."""
    folder = task_dir(task)
    paths = []
    for item in items:
        path = next_path(folder, str(item.seed), ".png")
        pnginfo.save_png(item.image, path, item.parameters)
        paths.append(str(path))
    return paths


def save_denoise_video(result: RunResult, task: str) -> str | None:
    """The first image's denoising steps as an MP4, when they were recorded."""
    if not result.images or not result.images[0].steps:
        return None
    item = result.images[0]
    path = next_path(task_dir(task), f"{item.seed}-steps", ".mp4")
    return str(write_denoise_video(item.steps, path, parameters=item.parameters))


def result_info(result: RunResult) -> str:
    """Seeds used, plus anything the engine adjusted or a Stop."""
    seeds = ", ".join(str(item.seed) for item in result.images) or "none"
    lines = [f"Seed{'s' if len(result.images) > 1 else ''} used: {seeds}", *result.notes]
    if result.interrupted and not any("Stopped" in n for n in result.notes):
        lines.append("Stopped before all images were made.")
    return "\n\n".join(lines)


def first_parameters(result: RunResult) -> str:
    return result.images[0].parameters if result.images else ""


# Running: the run button, a Stop shown only while a run goes, and a progress bar that keeps counting.
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
             stop: gr.Button, bar: ProgressBar) -> None:
    """Wire a run button (or a textbox's submit) to a streaming handler, with its progress bar and Stop.

    Gradio's own progress overlay is hidden: it covers the live preview and resets its timer at every preview.
    Instead the bar's timer redraws it from the session's `RunProgress` twice a second while the run goes.
    However the run ends (done, stopped, refused before it began, failed, busy), the bar says so and stops, Stop
    hides and the run button is free: Gradio 6 runs `.then` only after a success, so `.failure` does it too.
    """
    helper = dict(inputs=control, outputs=[bar.timer, stop, bar.html], queue=False, api_name=False,
                  show_progress="hidden")
    trigger(run_clicked, **helper)
    trigger(None, js=bring_into_view(bar.html.elem_id), queue=False, api_name=False, show_progress="hidden")
    event = trigger(ends_its_run(fn), inputs=inputs, outputs=outputs, api_name=api_name, concurrency_id=QUEUE_ID,
                    show_progress="hidden")
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


# Uploads: read by the engine's loader before Gradio touches them (listeners with preprocess=False), so a file
# that isn't an image gets our sentence, not Gradio's developer message with the server's temp path.
def check_uploads(image: gr.Image, say: bool = True) -> None:
    """Clear an upload the engine can't read, so the box shows no broken image, and say why.

    With `say=False` the box is only cleared: another listener on the same upload reports the sentence.
    """
    def reject_unreadable(value):  # the raw upload (preprocess=False), so Gradio never reads a broken file
        _, problem = readable(*upload_path(value))
        if not problem:
            return gr.skip()
        if say:
            gr.Warning(problem)
        return None

    # queued (not queue=False): Gradio delivers gr.Warning only through the queue
    image.upload(reject_unreadable, inputs=image, outputs=image, preprocess=False, api_name=False,
                 show_progress="hidden")


# Widgets with the app's defaults (A1111's): build them inside a layout context.
def prompt_row(task: str) -> tuple[gr.Textbox, gr.Textbox, gr.Button, gr.Button]:
    """The image tabs' top row: prompt and negative prompt beside Generate and Stop (#<task>-run/-stop)."""
    with gr.Row(equal_height=True):
        with gr.Column(scale=4):
            prompt = gr.Textbox(label="Prompt", lines=3, placeholder="a photo of ...")
            negative = gr.Textbox(label="Negative prompt", lines=2, placeholder="what to avoid")
        with gr.Column(scale=1, min_width=160):
            run, stop = run_buttons(task, "Generate")
    return prompt, negative, run, stop


def sampling_widgets() -> tuple[gr.Dropdown, gr.Slider, gr.Slider]:
    sampler = gr.Dropdown(sampler_names(), value=DEFAULT_SAMPLER, label="Sampler")
    steps = gr.Slider(1, MAX_STEPS, value=20, step=1, label="Steps")
    guidance = gr.Slider(1, 30, value=7, step=0.5, label="Guidance scale (CFG)")
    return sampler, steps, guidance


def fast_toggle() -> gr.Checkbox:
    """The step-saving switch: about 2x faster on CPU, slightly different images (BENCHMARKS.md)."""
    return gr.Checkbox(value=False, label="Fast: reuse deep features between steps (about 2× faster, slightly "
                                          "different result)",
                       info="Faster still on CPU: Few-step mode under 'LoRAs and embeddings' (an LCM, TCD or "
                            "Hyper-SD LoRA in weights/Lora: 4 steps at CFG 1 instead of 20 at 7).")


def seed_widgets() -> tuple[gr.Number, gr.Slider]:
    seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)")
    batch = gr.Slider(1, MAX_BATCH, value=1, step=1, label="Batch count")
    return seed, batch


def output_widgets(label: str, task: str) -> tuple[ProgressBar, gr.Gallery, gr.Image, gr.Markdown, gr.Textbox]:
    """Progress bar and live preview over the results gallery, then the seeds and PNG info.

    The preview is never covered by Gradio's progress overlay (the run's events hide it), so it stays visible.
    """
    with gr.Row(equal_height=False):
        preview = gr.Image(label="Live preview", interactive=False, height=200, elem_classes=["ds-preview"],
                           elem_id=f"{task}-preview", min_width=200, scale=1)
        with gr.Column(scale=2):
            bar = progress_bar(task)
            info = gr.Markdown(elem_classes=["ds-info"])
    gallery = result_gallery(label, columns=2, height=420, elem_classes=["ds-output"], elem_id=f"{task}-gallery")
    params = gr.Textbox(label="Generation parameters (PNG info)", lines=3, interactive=False, buttons=["copy"])
    return bar, gallery, preview, info, params


def result_gallery(label: str, **kwargs) -> gr.Gallery:
    """An output gallery: read-only, every result shown whole (contain, never cropped), saved as PNG."""
    classes = ["ds-gallery", *kwargs.pop("elem_classes", [])]
    return gr.Gallery(label=label, format="png", interactive=False, object_fit="contain", elem_classes=classes,
                      **kwargs)


def check_inputs_match(fn: Callable, names: list[str]) -> None:
    """Inputs are passed by position; fail at start-up if a tab's list and its handler drift apart."""
    import inspect

    params = [p for p in inspect.signature(fn).parameters if p not in ("progress",)]
    if params != names:
        raise RuntimeError(f"{fn.__name__} takes {params} but is wired to {names}")


def local_path(value) -> str | None:
    """Gallery and file values arrive as paths or (path, caption) pairs."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        value = value[0]
    if isinstance(value, dict):
        value = value.get("path") or value.get("name")
    return str(Path(value)) if value else None

