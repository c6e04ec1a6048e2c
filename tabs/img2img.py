"""Image to image: redraw a photo from a prompt, keeping its aspect ratio."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from engine.generate import ImageRequest, image_to_image
from tabs.common import (
    SessionControl,
    check_inputs_match,
    check_uploads,
    fast_toggle,
    image_outputs,
    on_gpu,
    output_widgets,
    prompt_row,
    sampling_widgets,
    seed_widgets,
    user_error,
    wire_run,
    wire_stop,
)

TASK = "img2img"


def build(manager) -> SimpleNamespace:
    """The tab's widgets and events; returns the widgets other tabs send to."""
    # 1. handlers
    def img2img(image, prompt, negative_prompt, strength, num_inference_steps, guidance_scale, size, seed,
                batch_count, sampler, fast, control, progress=gr.Progress()):
        if not image:
            raise user_error("Upload an image to start from.")
        req = ImageRequest(prompt=prompt, negative_prompt=negative_prompt, strength=strength,
                           num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                           width=size, height=size, seed=seed, batch_count=batch_count, sampler=sampler,
                           fast=bool(fast))
        job = lambda on_step, ctl: image_to_image(manager, req, image, on_step, ctl)  # noqa: E731
        yield from image_outputs(job, control, progress, manager.gate, TASK)

    # 2. layout
    with gr.Tab("Image to image", id=TASK):
        prompt, negative, run, stop = prompt_row(TASK)
        with gr.Row():
            with gr.Column():
                image = gr.Image(type="filepath", label="Start image", image_mode=None, height=320,
                                 elem_id="img2img-image")
                strength = gr.Slider(0.01, 1, value=0.75, step=0.01, label="Denoising strength")
                sampler, steps, guidance = sampling_widgets()
                size = gr.Slider(64, 2048, value=manager.defaults().width, step=8, label="Longer side (aspect ratio is kept)")
                seed, batch = seed_widgets()
                fast = fast_toggle()
            with gr.Column():
                bar, gallery, preview, info, params = output_widgets("Images", TASK)
                with gr.Row():
                    to_img2img = gr.Button("Send to image to image", size="sm")
                    to_inpaint = gr.Button("Send to inpaint", size="sm")
        control = gr.State(SessionControl())

    # 3. wiring
    inputs = {"image": image, "prompt": prompt, "negative_prompt": negative, "strength": strength,
              "num_inference_steps": steps, "guidance_scale": guidance, "size": size, "seed": seed,
              "batch_count": batch, "sampler": sampler, "fast": fast, "control": control}
    check_inputs_match(img2img, list(inputs))
    wire_run(run.click, on_gpu(img2img), inputs=list(inputs.values()), outputs=[gallery, preview, info, params],
             api_name="img2img", control=control, stop=stop, bar=bar)
    wire_stop(stop, control, "stop_img2img")
    check_uploads(image)
    return SimpleNamespace(image=image, prompt=prompt, negative=negative, gallery=gallery,
                           to_img2img=to_img2img, to_inpaint=to_inpaint, sizes=[size])
