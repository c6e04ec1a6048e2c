"""Widgets and plumbing every generating tab shares: engine errors to gr.Error, progress streaming, saving."""
from __future__ import annotations

import queue
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import gradio as gr

from engine import pnginfo
from engine.denoise_video import write_denoise_video
from engine.gate import BUSY, Busy, Gate
from engine.generate import MAX_BATCH, MAX_STEPS, RunControl, RunResult, StepUpdate
from engine.outputs import next_path, task_dir
from engine.schedulers import DEFAULT_SAMPLER, sampler_names

QUEUE_ID = "generate"  # every generating listener shares this queue


class SessionControl(RunControl):
    """A per-browser-session Stop switch; gr.State deep-copies its initial value for each session."""

    def __deepcopy__(self, memo):
        return SessionControl()


def on_gpu(fn: Callable) -> Callable:
    """On Hugging Face ZeroGPU hardware, hold a GPU for each call; anywhere else, leave the function alone."""
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(fn)


@contextmanager
def user_errors():
    """Engine ValueErrors become gr.Error so the user sees the sentence and the server keeps serving."""
    try:
        yield
    except ValueError as exc:
        raise gr.Error(str(exc)) from exc


def describe_step(update: StepUpdate):
    """Progress text for image jobs: image i of n, step s of t."""
    return (update.fraction, f"Image {update.image_index + 1}/{update.batch_count}, "
                             f"step {update.step}/{update.total_steps}", update.preview)


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
    threading.Thread(target=work, daemon=True).start()
    try:
        while (update := updates.get()) is not None:
            fraction, text, preview = describe(update)
            progress(fraction, desc=text)
            if preview is not None:
                yield preview, None
    finally:
        if not outcome:  # the client went away mid-run: stop the worker so the queue slot frees now
            control.stop()
    if isinstance(outcome.get("error"), Busy):
        raise gr.Error(BUSY)
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


# Widgets with the app's defaults (A1111's): build them inside a layout context.
def prompt_row(task: str) -> tuple[gr.Textbox, gr.Textbox, gr.Button, gr.Button]:
    """The image tabs' top row: prompt and negative prompt beside Generate and Stop (#<task>-run/-stop)."""
    with gr.Row(equal_height=True):
        with gr.Column(scale=4):
            prompt = gr.Textbox(label="Prompt", lines=3, placeholder="a photo of ...")
            negative = gr.Textbox(label="Negative prompt", lines=2, placeholder="what to avoid")
        with gr.Column(scale=1, min_width=160):
            run = gr.Button("Generate", variant="primary", elem_id=f"{task}-run")
            stop = gr.Button("Stop", variant="stop", elem_id=f"{task}-stop")
    return prompt, negative, run, stop


def sampling_widgets() -> tuple[gr.Dropdown, gr.Slider, gr.Slider]:
    sampler = gr.Dropdown(sampler_names(), value=DEFAULT_SAMPLER, label="Sampler")
    steps = gr.Slider(1, MAX_STEPS, value=20, step=1, label="Steps")
    guidance = gr.Slider(1, 30, value=7, step=0.5, label="Guidance scale (CFG)")
    return sampler, steps, guidance


def fast_toggle() -> gr.Checkbox:
    """The step-saving switch: about 2x faster on CPU, slightly different images (BENCHMARKS.md)."""
    return gr.Checkbox(value=False, label="Fast: reuse deep features between steps (about 2× faster, slightly "
                                          "different result)")


def seed_widgets() -> tuple[gr.Number, gr.Slider]:
    seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)")
    batch = gr.Slider(1, MAX_BATCH, value=1, step=1, label="Batch count")
    return seed, batch


def output_widgets(label: str) -> tuple[gr.Gallery, gr.Image, gr.Markdown, gr.Textbox]:
    gallery = gr.Gallery(label=label, columns=2, height=420, format="png", elem_classes=["ds-output"],
                         interactive=False)
    preview = gr.Image(label="Live preview", interactive=False, height=200, elem_classes=["ds-preview"])
    info = gr.Markdown(elem_classes=["ds-info"])
    params = gr.Textbox(label="Generation parameters (PNG info)", lines=3, interactive=False, buttons=["copy"])
    return gallery, preview, info, params


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

