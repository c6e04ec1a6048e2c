"""Extras: restore the faces of a finished picture, or a batch of them, and upscale it with a model or Lanczos."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
from PIL import Image

from engine.extras.batch import run_batch
from engine.extras.request import ExtrasRequest
from engine.extras.run import open_image, run_extras
from engine.extras.upscale import MAX_SCALE
from engine.extras.upscalers import LANCZOS, upscaler_names
from engine.files import pnginfo
from engine.files.outputs import next_path, task_dir
from tabs.common import check_inputs_match, check_uploads, local_path
from tabs.faces_common import refresh_restorers, restore_widgets, restorer_choice
from tabs.running import progress_bar, run_buttons, stream, wire_run, wire_stop
from tabs.session import SessionControl, user_error
from widgets.image_upload import ImageUpload

TASK = "extras"
SINGLE, BATCH = "One picture", "Batch (images or a zip)"
BY, TO = "Scale by", "Scale to"
MODELS_HINT = ("Upscaler models (.pth or .safetensors, such as RealESRGAN_x4plus) go in weights/ESRGAN, "
               "weights/RealESRGAN or weights/SwinIR; open this tab again to list new ones.")


def describe(update):
    """Tiles of one picture, or files of a batch."""
    kind, done, total, name = update
    if kind == "tile":
        return done / total, f"Tile {done} of {total}", None
    return done / total, f"Picture {done + 1} of {total}: {name}", None


RESTORE_NOTE = "runs before the upscale; only the faces found change"


def refreshed_upscalers(manager) -> gr.Dropdown:
    """The upscaler menu as weights/ is now, so a model copied in is offered when the tab is opened."""
    names = upscaler_names(manager.weights_dir)
    return gr.Dropdown(choices=names, info=None if len(names) > 1 else MODELS_HINT)


def build(manager) -> None:
    """The tab's widgets and events."""
    names = upscaler_names(manager.weights_dir)

    # 1. handlers
    def upscale(source, photo, files, resize_mode, upscale_by, width, height, upscaler, restorer, visibility, control,
                progress=gr.Progress()):
        restoring = dict(restore_faces=restorer_choice(restorer), visibility=float(visibility))
        to = (int(width or 0), int(height or 0)) if resize_mode == TO else None
        if to and min(to) < 1:
            raise user_error("Give a width and a height to scale to, or choose Scale by.")
        if source == BATCH:
            yield from run_many(files, to, upscale_by, upscaler, restoring, control, progress)
            return
        if not photo:
            raise user_error("Upload a picture to upscale.")
        try:
            req = ExtrasRequest(open_image(photo), upscale_by=float(upscale_by), upscale_to=to, upscaler=upscaler,
                                **restoring)
            req.size()
        except ValueError as exc:
            raise user_error(str(exc)) from exc
        job = lambda on_update, ctl: run_extras(  # noqa: E731
            req, manager.weights_dir, on_tile=lambda done, total: on_update(("tile", done, total, "")))
        for _, result in stream(job, control, progress, manager.gate, describe=describe):
            if result is not None:
                path = next_path(task_dir(TASK), "upscaled", ".png")
                pnginfo.save_png(result.image, path, result.parameters)
                note = f"{req.image.width}×{req.image.height} → {result.image.width}×{result.image.height}"
                before = req.image.resize(result.image.size, Image.NEAREST)  # the same size, so the halves line up
                yield (before, str(path)), str(path), note

    def run_many(files, to, upscale_by, upscaler, restoring, control, progress):
        paths = [Path(p) for p in (local_path(f) for f in files or []) if p]
        if not paths:
            raise user_error("Add some images or a zip of images to the batch.")
        template = ExtrasRequest(None, upscale_by=float(upscale_by), upscale_to=to, upscaler=upscaler, **restoring)
        out_zip = next_path(task_dir(TASK), "batch", ".zip")
        job = lambda on_update, ctl: run_batch(  # noqa: E731
            paths, template, manager.weights_dir, out_zip,
            on_file=lambda index, total, name: on_update(("file", index, total, name)), stopped=lambda: ctl.stopped)
        for _, result in stream(job, control, progress, manager.gate, describe=describe):
            if result is not None:
                lines = [f"{len(result.done)} of {result.total} pictures upscaled into {out_zip.name}."]
                if result.stopped:
                    lines.append("Stopped: the zip holds the pictures finished before Stop.")
                lines += [f"Skipped {line}" for line in result.skipped]
                yield None, str(out_zip) if result.done else None, "\n\n".join(lines)

    def show_source(source):
        return gr.update(visible=source == SINGLE), gr.update(visible=source == BATCH)

    def show_resize(mode):
        return gr.update(visible=mode == BY), gr.update(visible=mode == TO), gr.update(visible=mode == TO)

    # 2. layout
    with gr.Tab("Extras", id=TASK) as tab:
        with gr.Row(equal_height=True):
            with gr.Column(scale=4):
                source = gr.Radio([SINGLE, BATCH], value=SINGLE, label="Upscale", elem_id="extras-source")
            with gr.Column(scale=1, min_width=160):
                run, stop = run_buttons(TASK, "Upscale")
        with gr.Row():
            with gr.Column():
                photo = ImageUpload(type="filepath", label="Picture", image_mode=None, height=280,
                                    elem_id="extras-photo")
                files = gr.File(label="Pictures or a zip", file_count="multiple", file_types=["image", ".zip"],
                                height=120, visible=False, elem_id="extras-files")
                upscaler = gr.Dropdown(names, value=names[1] if len(names) > 1 else LANCZOS, label="Upscaler",
                                       info=None if len(names) > 1 else MODELS_HINT, elem_id="extras-upscaler")
                restorer, visibility = restore_widgets(manager, TASK, RESTORE_NOTE)
                resize_mode = gr.Radio([BY, TO], value=BY, label="Resize", elem_id="extras-resize")
                upscale_by = gr.Slider(1, MAX_SCALE, value=2, step=0.05, label="Scale by", elem_id="extras-by")
                with gr.Row():
                    width = gr.Number(value=1024, precision=0, label="Width", visible=False, elem_id="extras-width")
                    height = gr.Number(value=1024, precision=0, label="Height", visible=False,
                                       elem_id="extras-height")
            with gr.Column():
                with gr.Row():  # one row for result and progress, so a run scrolls both into view on a phone
                    with gr.Column():
                        slider = gr.ImageSlider(label="Before / after", type="pil", height=360, interactive=False,
                                                elem_id="extras-preview")
                        bar = progress_bar(TASK)
                        info = gr.Markdown(elem_id="extras-info")
                download = gr.File(label="Download", interactive=False, elem_id="extras-download")
        control = gr.State(SessionControl())

    # 3. wiring
    tab.select(lambda: (refreshed_upscalers(manager), *refresh_restorers(manager, RESTORE_NOTE)),
               outputs=[upscaler, restorer, visibility], api_name=False, queue=False, show_progress="hidden")
    inputs = {"source": source, "photo": photo, "files": files, "resize_mode": resize_mode,
              "upscale_by": upscale_by, "width": width, "height": height, "upscaler": upscaler, "restorer": restorer,
              "visibility": visibility, "control": control}
    check_inputs_match(upscale, list(inputs))
    # upscaling runs on the CPU, beside the generating queue (and outside ZeroGPU's GPU calls)
    wire_run(run.click, upscale, inputs=list(inputs.values()), outputs=[slider, download, info], api_name="extras",
             control=control, stop=stop, bar=bar, concurrency_id=TASK, concurrency_limit=1)
    wire_stop(stop, control, "stop_extras")
    check_uploads(photo)
    source.change(show_source, inputs=source, outputs=[photo, files], api_name=False, queue=False)
    resize_mode.change(show_resize, inputs=resize_mode, outputs=[upscale_by, width, height], api_name=False,
                       queue=False)
