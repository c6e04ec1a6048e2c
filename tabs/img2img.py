"""Image to image: redraw a photo from a prompt, keeping its aspect ratio."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from engine.image.generate import image_to_image
from engine.image.request import ImageRequest
from engine.jobs.runner import run_job
from engine.xyz import run_plot
from tabs.common import (
    check_inputs_match,
    check_uploads,
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
from tabs.pnginfo_common import png_info_panel, wire_png_info
from tabs.running import wire_run, wire_stop
from tabs.session import SessionControl, user_error
from tabs.styles_common import style_picker, styled
from tabs.variations_common import variation_widgets, variations_of, variations_panel, wire_selection
from tabs.xyz_common import AXIS_INPUTS, plan_line, plot_outputs, plot_panel, plot_request, wire_plan
from widgets.image_upload import ImageUpload

TASK = "img2img"


def build(manager) -> SimpleNamespace:
    """The tab's widgets and events; returns the widgets other tabs send to."""
    # 1. handlers
    def img2img(image, prompt, negative_prompt, strength, num_inference_steps, guidance_scale, size, seed,
                batch_count, sampler, denoise_video, fast, styles, variation_seed, variation_strength, controlnet,
                control, fast_decode=False, progress=gr.Progress()):
        if not image:
            raise user_error("Upload an image to start from.")
        prompt, negative_prompt = styled(styles, prompt, negative_prompt)
        req = ImageRequest(prompt=prompt, negative_prompt=negative_prompt, strength=strength,
                           num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                           width=size, height=size, seed=seed, batch_count=batch_count, sampler=sampler,
                           denoise_video=bool(denoise_video), fast=bool(fast), variation_seed=variation_seed,
                           variation_strength=variation_strength, control_units=units_from_values(controlnet),
                           fast_decode=bool(fast_decode))
        job = lambda on_step, ctl: run_job(image_to_image, manager, req, image, on_step, ctl)  # noqa: E731
        yield from image_outputs(job, control, progress, manager.gate, TASK, denoise_video=True)

    def plot_base(prompt, negative_prompt, strength, num_inference_steps, guidance_scale, size, seed, sampler, fast,
                  variation_seed, variation_strength, controlnet):
        return ImageRequest(prompt=prompt, negative_prompt=negative_prompt, strength=strength,
                            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, width=size,
                            height=size, seed=seed, sampler=sampler, fast=bool(fast),
                            variation_seed=variation_seed, variation_strength=variation_strength,
                            control_units=units_from_values(controlnet))

    def xyz_plot(image, prompt, negative_prompt, strength, num_inference_steps, guidance_scale, size, seed, sampler,
                 fast, variation_seed, variation_strength, controlnet, x_type, x_values, y_type, y_values, z_type,
                 z_values, video_axis, control, pace, fast_decode=False,
                 progress=gr.Progress()):
        if not image:
            raise user_error("Upload an image to start from.")
        base = plot_base(prompt, negative_prompt, strength, num_inference_steps, guidance_scale, size, seed, sampler,
                         fast, variation_seed, variation_strength, controlnet)
        base.fast_decode = bool(fast_decode)
        req = plot_request(base, x_type, x_values, y_type, y_values, z_type, z_values, video_axis)
        job = lambda on_step, ctl: run_job(run_plot, manager, req, image, on_step, ctl, task=TASK)  # noqa: E731
        yield from plot_outputs(manager, job, req, TASK, control, progress, pace)

    def xyz_plan(image, prompt, negative_prompt, strength, num_inference_steps, guidance_scale, size, seed, sampler,
                 fast, variation_seed, variation_strength, controlnet, x_type, x_values, y_type, y_values, z_type,
                 z_values, video_axis, pace):
        base = plot_base(prompt, negative_prompt, strength, num_inference_steps, guidance_scale, size, seed, sampler,
                         fast, variation_seed, variation_strength, controlnet)
        req = plot_request(base, x_type, x_values, y_type, y_values, z_type, z_values, video_axis)
        return plan_line(manager, req, TASK, pace)

    # 2. layout
    with gr.Tab("Image to image", id=TASK):
        prompt, negative, run, stop = prompt_row(TASK)
        with gr.Row():
            with gr.Column():
                image = ImageUpload(type="filepath", label="Start image", image_mode=None, height=320,
                                    elem_id="img2img-image")
                strength = gr.Slider(0.01, 1, value=0.75, step=0.01, label="Denoising strength")
                styles = style_picker(TASK, prompt, negative)
                sampler, steps, guidance = sampling_widgets()
                size = gr.Slider(64, 2048, value=manager.defaults().width, step=8, label="Longer side (aspect ratio is kept)")
                seed, batch = seed_widgets()
                variation_seed, variation_strength = variation_widgets(TASK)
                fast = fast_toggle(manager)
                fast_decode = fast_decode_toggle(manager, TASK)
                network_picker(manager, prompt, TASK, sampler, steps, guidance, fast_decode=fast_decode)
                denoise = gr.Checkbox(label="Also make a denoising video (the predicted image at every step)",
                                      elem_id="img2img-denoise-video")
                controlnet = control_accordion(manager, TASK, size, size, own_image=image)
                plot = plot_panel(TASK, defaults=("Denoising", "0.3, 0.5, 0.7"))
                png = png_info_panel(TASK)
            with gr.Column():
                bar, gallery, preview, info, params = output_widgets("Images", TASK)
                variations = variations_panel(TASK)
                steps_video = gr.Video(label="Denoising video", visible=False, height=360, interactive=False,
                                       elem_id="img2img-steps-video")
                with gr.Row():
                    to_img2img = gr.Button("Send to image to image", size="sm")
                    to_inpaint = gr.Button("Send to inpaint", size="sm")
        control = gr.State(SessionControl())

    # 3. wiring
    inputs = {"image": image, "prompt": prompt, "negative_prompt": negative, "strength": strength,
              "num_inference_steps": steps, "guidance_scale": guidance, "size": size, "seed": seed,
              "batch_count": batch, "sampler": sampler, "denoise_video": denoise, "fast": fast, "styles": styles,
              "variation_seed": variation_seed, "variation_strength": variation_strength,
              "controlnet": controlnet.state, "control": control, "fast_decode": fast_decode}
    check_inputs_match(img2img, list(inputs))
    wire_run(run.click, on_gpu(img2img, "img2img"), inputs=list(inputs.values()),
             outputs=[gallery, preview, info, params, steps_video], api_name="img2img", control=control, stop=stop,
             bar=bar)
    wire_stop(stop, control, "stop_img2img")
    own = [widget for name, widget in inputs.items() if name not in ("seed", "batch_count", "variation_seed",
                                                                     "variation_strength", "control")]
    wire_selection(variations, gallery)
    wire_run(variations.button.click, on_gpu(variations_of(img2img), "img2img"),
             inputs=[*own, gallery, variations.selected, variations.count, variations.start, variations.strength,
                     control], outputs=[gallery, preview, info, params, steps_video], api_name="make_variations_img2img",
             control=control, stop=stop, bar=bar)
    # the Denoising video box shows only when there is a video in it
    steps_video.change(lambda v: gr.Video(visible=bool(v)), inputs=steps_video, outputs=steps_video, api_name=False,
                       queue=False, show_progress="hidden")
    plot_inputs = {"image": image, "prompt": prompt, "negative_prompt": negative, "strength": strength,
                   "num_inference_steps": steps, "guidance_scale": guidance, "size": size, "seed": seed,
                   "sampler": sampler, "fast": fast,
                   "variation_seed": variation_seed, "variation_strength": variation_strength,
                   "controlnet": controlnet.state,
                   **{name: plot.widgets[name] for name in AXIS_INPUTS}}
    check_inputs_match(xyz_plot, [*plot_inputs, "control", "pace", "fast_decode"])
    check_inputs_match(xyz_plan, [*plot_inputs, "pace"])
    plot_run = [*plot_inputs.values(), control, plot.pace, fast_decode]
    wire_run(plot.run.click, on_gpu(xyz_plot, "xyz_plot_img2img"), inputs=plot_run,
             outputs=[gallery, preview, info, params, plot.video, plot.plan, plot.pace], api_name="xyz_plot_img2img",
             control=control, stop=stop, bar=bar)
    wire_plan(plot, xyz_plan, [*plot_inputs.values(), plot.pace], api_name="xyz_plan_img2img")
    check_uploads(image)
    loads = {"prompt": prompt, "negative_prompt": negative, "strength": strength, "num_inference_steps": steps,
             "guidance_scale": guidance, "size": size, "seed": seed, "sampler": sampler, "styles": styles,
             "variation_seed": variation_seed, "variation_strength": variation_strength, "fast_decode": fast_decode}
    wire_png_info(manager, png, loads, controlnet, api_name="png_info_img2img", own_image=True)
    return SimpleNamespace(fast=fast, image=image, prompt=prompt, negative=negative, gallery=gallery,
                           to_img2img=to_img2img, to_inpaint=to_inpaint, sizes=[size])
