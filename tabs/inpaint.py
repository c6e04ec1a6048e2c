"""Inpaint: paint over part of a photo and redraw only that part; the rest stays pixel for pixel."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import numpy as np

from engine.image.generate import inpaint, inpaint_preview
from engine.image.request import ImageRequest
from engine.jobs.runner import run_job
from tabs.common import (
    check_inputs_match,
    fast_decode_toggle,
    fast_toggle,
    image_outputs,
    on_gpu,
    output_widgets,
    prompt_row,
    sampling_widgets,
    seed_widgets,
)
from tabs.control_common import control_accordion, units_from_values
from tabs.extras_common import network_picker
from tabs.pnginfo_common import ONLY_MASKED, WHOLE_PICTURE, png_info_panel, wire_png_info
from tabs.running import wire_run, wire_stop
from tabs.session import SessionControl, user_error
from tabs.styles_common import style_picker, styled
from widgets.image_upload import readable

TASK = "inpaint"
AREAS = [WHOLE_PICTURE, ONLY_MASKED]


def editor_image_and_mask(value) -> tuple[np.ndarray, np.ndarray]:
    """Split the editor's value into the uploaded photo and the painted strokes (any layer, alpha > 0)."""
    if not value or value.get("background") is None:
        raise user_error("Upload a photo, then paint the area to change.")
    background = np.asarray(value["background"])
    mask = np.zeros(background.shape[:2], dtype=bool)
    for layer in value.get("layers") or []:
        layer = np.asarray(layer)
        if layer.shape[:2] != mask.shape:
            raise user_error("The painted layer does not match the photo's size; paint again after uploading.")
        mask |= (layer[..., 3] > 0) if layer.ndim == 3 and layer.shape[2] == 4 else (layer > 0)
    return background, mask


def editor_value(path: str) -> dict:
    """What the editor shows for a freshly loaded photo: the photo as background, nothing painted yet."""
    return {"background": path, "layers": [], "composite": path}


def build(manager) -> SimpleNamespace:
    """The tab's widgets and events; returns the widgets other tabs send to."""
    # 1. handlers
    def inpaint_run(editor, prompt, negative_prompt, strength, mask_blur, inpaint_area, padding,
                    num_inference_steps, guidance_scale, size, seed, batch_count, sampler, denoise_video, fast,
                    styles, controlnet, control, fast_decode=False, progress=gr.Progress()):
        image, mask = editor_image_and_mask(editor)
        prompt, negative_prompt = styled(styles, prompt, negative_prompt)
        req = ImageRequest(prompt=prompt, negative_prompt=negative_prompt, strength=strength, mask_blur=mask_blur,
                           only_masked=inpaint_area == AREAS[1], only_masked_padding=padding,
                           num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                           width=size, height=size, seed=seed, batch_count=batch_count, sampler=sampler,
                           denoise_video=bool(denoise_video), fast=bool(fast),
                           control_units=units_from_values(controlnet), fast_decode=bool(fast_decode))
        job = lambda on_step, ctl: run_job(inpaint, manager, req, image, mask, on_step, ctl)  # noqa: E731
        yield from image_outputs(job, control, progress, manager.gate, TASK, denoise_video=True)

    def upload_photo(file):
        """The Upload button: the engine reads the file first, so a non-image gets one sentence, not a blank."""
        if file is None:
            return gr.skip()
        path, problem = readable(file)
        if problem:
            raise user_error(problem)
        return editor_value(path)

    def mask_preview(editor, mask_blur, inpaint_area, padding, size):
        try:
            image, mask = editor_image_and_mask(editor)
            if not mask.any():
                return None
            return inpaint_preview(image, mask, int(mask_blur), inpaint_area == AREAS[1], int(padding),
                                   int(size), int(size))
        except (gr.Error, ValueError):
            return None

    # 2. layout
    with gr.Tab("Inpaint", id=TASK):
        prompt, negative, run, stop = prompt_row(TASK)
        with gr.Row():
            with gr.Column():
                upload = gr.UploadButton("Upload a photo", file_types=["image"], type="filepath", size="sm",
                                         elem_id="inpaint-upload")
                # Uploads go through the button above, checked by the engine; the editor only takes a paste.
                editor = gr.ImageEditor(label="Photo: paint over the area to change", type="numpy",
                                        image_mode="RGBA", format="png", height=420, elem_id="inpaint-editor",
                                        brush=gr.Brush(colors=["#ff3030"], color_mode="fixed", default_size=24),
                                        layers=gr.LayerOptions(allow_additional_layers=False),
                                        transforms=(), sources=("clipboard",))
                # beside what it previews, so the results column starts with the progress and the result
                preview_mask = gr.Image(label="Mask preview", interactive=False, height=200,
                                        elem_id="inpaint-mask-preview")
                with gr.Row():
                    mask_blur = gr.Slider(0, 64, value=4, step=1, label="Mask blur")
                    strength = gr.Slider(0.01, 1, value=0.75, step=0.01, label="Denoising strength")
                with gr.Row():
                    area = gr.Radio(AREAS, value=AREAS[0], label="Inpaint area")
                    padding = gr.Slider(0, 256, value=32, step=4, label="Only-masked padding (px)")
                styles = style_picker(TASK, prompt, negative)
                sampler, steps, guidance = sampling_widgets()
                size = gr.Slider(64, 2048, value=manager.defaults().width, step=8, label="Work size (longer side)")
                seed, batch = seed_widgets()
                fast = fast_toggle(manager)
                fast_decode = fast_decode_toggle(manager, TASK)
                network_picker(manager, prompt, TASK, sampler, steps, guidance, fast_decode=fast_decode)
                denoise = gr.Checkbox(label="Also make a denoising video (the whole photo, the predicted area "
                                            "pasted back at every step)", elem_id="inpaint-denoise-video")
                controlnet = control_accordion(manager, TASK, size, size, own_image=editor)
                png = png_info_panel(TASK)
            with gr.Column():
                bar, gallery, preview, info, params = output_widgets("Images", TASK)
                steps_video = gr.Video(label="Denoising video", visible=False, height=360, interactive=False,
                                       elem_id="inpaint-steps-video")
                with gr.Row():
                    to_img2img = gr.Button("Send to image to image", size="sm")
                    to_inpaint = gr.Button("Send to inpaint", size="sm")
        control = gr.State(SessionControl())

    # 3. wiring
    inputs = {"editor": editor, "prompt": prompt, "negative_prompt": negative, "strength": strength,
              "mask_blur": mask_blur, "inpaint_area": area, "padding": padding, "num_inference_steps": steps,
              "guidance_scale": guidance, "size": size, "seed": seed, "batch_count": batch, "sampler": sampler,
              "denoise_video": denoise, "fast": fast, "styles": styles, "controlnet": controlnet.state,
              "control": control, "fast_decode": fast_decode}
    check_inputs_match(inpaint_run, list(inputs))
    wire_run(run.click, on_gpu(inpaint_run, "inpaint"), inputs=list(inputs.values()),
             outputs=[gallery, preview, info, params, steps_video], api_name="inpaint", control=control, stop=stop,
             bar=bar)
    wire_stop(stop, control, "stop_inpaint")
    # the Denoising video box shows only when there is a video in it
    steps_video.change(lambda v: gr.Video(visible=bool(v)), inputs=steps_video, outputs=steps_video, api_name=False,
                       queue=False, show_progress="hidden")
    upload.upload(upload_photo, inputs=upload, outputs=editor, api_name=False, show_progress="hidden")
    preview_inputs = [editor, mask_blur, area, padding, size]
    for trigger in (editor.change, mask_blur.release, area.change, padding.release):
        trigger(mask_preview, inputs=preview_inputs, outputs=preview_mask, show_progress="hidden",
                trigger_mode="always_last", api_name="inpaint_mask_preview" if trigger == editor.change else False)
    loads = {"prompt": prompt, "negative_prompt": negative, "strength": strength, "mask_blur": mask_blur,
             "inpaint_area": area, "padding": padding, "num_inference_steps": steps, "guidance_scale": guidance,
             "size": size, "seed": seed, "sampler": sampler, "styles": styles, "fast_decode": fast_decode}
    wire_png_info(manager, png, loads, controlnet, api_name="png_info_inpaint", own_image=True)
    return SimpleNamespace(fast=fast, editor=editor, prompt=prompt, negative=negative, gallery=gallery,
                           to_img2img=to_img2img, to_inpaint=to_inpaint, sizes=[size])
