"""Widgets every generating tab shares, with the app's (A1111's) defaults, and an image tab's run saved as PNGs.

Running a job lives in tabs.running, the session's Stop switch and error sentences in tabs.session."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable, Iterator

import gradio as gr

from engine.backends import fast_choice
from engine.files import pnginfo
from engine.files.outputs import next_path, task_dir
from engine.image.request import MAX_BATCH, MAX_STEPS, RunControl, RunResult
from engine.jobs.gate import Gate
from engine.pipeline.schedulers import DEFAULT_SAMPLER, sampler_names
from engine.video.denoise import write_denoise_video
from tabs import gpu
from tabs.running import ProgressBar, progress_bar, run_buttons, stream
from tabs.session import user_errors
from widgets.image_upload import readable, upload_path


def on_gpu(fn: Callable, seconds: Callable[..., int] | str | None = None, inner: bool = False) -> Callable:
    """On Hugging Face ZeroGPU hardware, hold a GPU for each call, asking `seconds(*args)` (or a tab's estimate, by
    name); anywhere else, leave the function alone (tabs.gpu)."""
    return gpu.on_gpu(fn, seconds, inner)


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
    variations = [str(item.variation_seed) for item in result.images if getattr(item, "variation_seed", None) is not None]
    if variations:
        lines.insert(1, f"Variation seed{'s' if len(variations) > 1 else ''}: {', '.join(variations)}")
    if result.interrupted and not any("Stopped" in n for n in result.notes):
        lines.append("Stopped before all images were made.")
    return "\n\n".join(lines)


def first_parameters(result: RunResult) -> str:
    return result.images[0].parameters if result.images else ""


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


FEW_STEP_HINT = ("Faster still on CPU: Few-step mode under 'LoRAs and embeddings' (an LCM, TCD or Hyper-SD LoRA in "
                 "weights/Lora: 4 steps at CFG 1 instead of 20 at 7).")


def fast_offer(manager, fewstep_ok: bool = True) -> dict:
    """Fast only where it is faster, saying what it does on the running back end and the speed-up measured there.

    On PyTorch it reuses deep features. On OpenVINO that would leave the compiled model for a slower PyTorch run,
    so there Fast is Few-step mode on the fused model (engine.backends.fast_choice) in the tabs that run it
    (`fewstep_ok`), and elsewhere the box is greyed out with the reason. A measured slowdown withdraws it too.
    """
    backend = manager.backend
    chosen = fast_choice.offer(manager)
    if chosen.mode == "fewstep" and not fewstep_ok:
        return dict(value=False, interactive=False, label="Fast: not offered on OpenVINO in this tab",
                    info=fast_choice.ON_OPENVINO)
    if chosen.mode is None:
        return dict(value=False, interactive=False, label=fast_choice.label(chosen, backend), info=chosen.reason)
    measured = fast_choice.speedup(backend)
    if measured is not None and measured < 1.0:
        return dict(value=False, interactive=False, label=f"Fast: not offered here (measured {measured:.2f}×, slower)",
                    info=FEW_STEP_HINT)
    return dict(interactive=True, label=fast_choice.label(chosen, backend),
                info=FEW_STEP_HINT if chosen.mode == "reuse" else None)


def fast_toggle(manager, fewstep_ok: bool = True) -> gr.Checkbox:
    """The step-saving switch, offered where it is faster (fast_offer); refreshed on each page load."""
    return gr.Checkbox(**{"value": False, **fast_offer(manager, fewstep_ok)}, elem_classes=["ds-fast"])


def refresh_fast(manager, fewstep_ok: list[bool]):
    """Every tab's Fast box brought up to date with the back end, the LoRAs found and the latest measurements."""
    updates = [gr.update(**fast_offer(manager, ok)) for ok in fewstep_ok]
    return updates if len(updates) > 1 else updates[0]


def fast_decode_toggle(manager, task: str, on_by_default: str = "in Few-step mode",
                       grey_when_missing: bool = False) -> gr.Checkbox:
    """A1111's "VAE type for decode: TAESD": the tiny VAE decodes the result, about 16x cheaper."""
    return gr.Checkbox(label="Fast decode: the tiny VAE (TAESD) decodes the result (about 16× cheaper than "
                             "the VAE, less fine detail)", elem_id=f"{task}-fast-decode",
                       **{"value": False, **fast_decode_offer(manager, on_by_default, grey_when_missing)})


def fast_decode_offer(manager, on_by_default: str = "in Few-step mode", grey_when_missing: bool = False) -> dict:
    """The Fast decode box's state: when it is on by default, or where to get TAESD (greyed out, if asked, and
    unticked) while its weights are missing."""
    if manager.taesd_available():
        return dict(info=f"On by default {on_by_default}.", interactive=True if grey_when_missing else None)
    missing = dict(info="Needs TAESD in weights/taesd: get it under 'Downloads' at the top of the page.")
    return {**missing, "interactive": False, "value": False} if grey_when_missing else missing


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

