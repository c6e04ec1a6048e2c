"""Text to image: a prompt in, a gallery of PNGs that carry their parameters out."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from engine.image.generate import text_to_image
from engine.image.hires import (
    DEFAULT_SCALE,
    DEFAULT_STRENGTH,
    DEFAULT_UPSCALER,
    MAX_SCALE,
    MIN_SCALE,
    hires_size,
    upscaler_choices,
)
from engine.image.request import MAX_STEPS, ImageRequest
from engine.jobs.runner import run_job
from engine.xyz import run_plot
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
from tabs.pnginfo_common import png_info_panel, wire_png_info
from tabs.running import wire_run, wire_stop
from tabs.session import SessionControl
from tabs.styles_common import style_picker, styled
from tabs.variations_common import variation_widgets, variations_of, variations_panel, wire_selection
from tabs.xyz_common import AXIS_INPUTS, plan_line, plot_outputs, plot_panel, plot_request, wire_plan

TASK = "txt2img"


def build(manager) -> SimpleNamespace:
    """The tab's widgets and events; returns the widgets other tabs send to or read from."""
    # 1. handlers
    def txt2img(prompt, negative_prompt, num_inference_steps, guidance_scale, width, height, seed, batch_count,
                sampler, denoise_video, fast, styles, hires, hires_scale, hires_upscaler, hires_steps, hires_strength,
                variation_seed, variation_strength, controlnet, control, fast_decode=False,
                progress=gr.Progress()):
        prompt, negative_prompt = styled(styles, prompt, negative_prompt)
        req = ImageRequest(prompt=prompt, negative_prompt=negative_prompt,
                           num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                           width=width, height=height, seed=seed, batch_count=batch_count, sampler=sampler,
                           denoise_video=bool(denoise_video), fast=bool(fast),
                           hires_scale=hires_scale if hires else None, hires_upscaler=hires_upscaler,
                           hires_steps=hires_steps, hires_strength=hires_strength,
                           variation_seed=variation_seed, variation_strength=variation_strength,
                           control_units=units_from_values(controlnet), fast_decode=bool(fast_decode))
        job = lambda on_step, ctl: run_job(text_to_image, manager, req, on_step, ctl)  # noqa: E731
        yield from image_outputs(job, control, progress, manager.gate, TASK, denoise_video=True)

    def plot_base(prompt, negative_prompt, num_inference_steps, guidance_scale, width, height, seed, sampler, fast,
                  variation_seed, variation_strength, controlnet):
        return ImageRequest(prompt=prompt, negative_prompt=negative_prompt, num_inference_steps=num_inference_steps,
                            guidance_scale=guidance_scale, width=width, height=height, seed=seed, sampler=sampler,
                            fast=bool(fast), variation_seed=variation_seed, variation_strength=variation_strength,
                            control_units=units_from_values(controlnet))

    def xyz_plot(prompt, negative_prompt, num_inference_steps, guidance_scale, width, height, seed, sampler, fast,
                 variation_seed, variation_strength, controlnet, x_type, x_values, y_type, y_values, z_type, z_values,
                 video_axis, control, pace, fast_decode=False, progress=gr.Progress()):
        base = plot_base(prompt, negative_prompt, num_inference_steps, guidance_scale, width, height, seed, sampler,
                         fast, variation_seed, variation_strength, controlnet)
        base.fast_decode = bool(fast_decode)
        req = plot_request(base, x_type, x_values, y_type, y_values, z_type, z_values, video_axis)
        job = lambda on_step, ctl: run_job(run_plot, manager, req, None, on_step, ctl, task=TASK)  # noqa: E731
        yield from plot_outputs(manager, job, req, TASK, control, progress, pace)

    def xyz_plan(prompt, negative_prompt, num_inference_steps, guidance_scale, width, height, seed, sampler, fast,
                 variation_seed, variation_strength, controlnet, x_type, x_values, y_type, y_values, z_type, z_values,
                 video_axis, pace):
        base = plot_base(prompt, negative_prompt, num_inference_steps, guidance_scale, width, height, seed, sampler,
                         fast, variation_seed, variation_strength, controlnet)
        req = plot_request(base, x_type, x_values, y_type, y_values, z_type, z_values, video_axis)
        return plan_line(manager, req, TASK, pace)

    def hires_line(hires, width, height, scale):
        """A1111's "from 512x512 to 1024x1024" under the Hires. fix fields."""
        if not hires:
            return ""
        try:
            wide, high = hires_size(int(width), int(height), float(scale))
        except (TypeError, ValueError):
            return ""
        return f"Draws at {int(width)}×{int(height)}, then upscales and redraws at {wide}×{high}."

    # 2. layout
    with gr.Tab("Text to image", id=TASK):
        prompt, negative, run, stop = prompt_row(TASK)
        with gr.Row():
            with gr.Column():
                styles = style_picker(TASK, prompt, negative)
                sampler, steps, guidance = sampling_widgets()
                with gr.Row():
                    width = gr.Slider(64, 2048, value=manager.defaults().width, step=8, label="Width")
                    height = gr.Slider(64, 2048, value=manager.defaults().width, step=8, label="Height")
                with gr.Accordion("Hires. fix", open=False, elem_id="txt2img-hires"):
                    hires = gr.Checkbox(label="Enable Hires. fix: draw at the size above, upscale, then redraw "
                                              "the details at the large size", elem_id="txt2img-hires-enable")
                    with gr.Row():
                        hires_upscaler = gr.Dropdown(upscaler_choices(manager.weights_dir), value=DEFAULT_UPSCALER,
                                                     label="Upscaler")
                        hires_scale = gr.Slider(MIN_SCALE, MAX_SCALE, value=DEFAULT_SCALE, step=0.05,
                                                label="Upscale by")
                    with gr.Row():
                        hires_steps = gr.Slider(0, MAX_STEPS, value=0, step=1, label="Hires steps (0 = same as Steps)")
                        hires_strength = gr.Slider(0, 1, value=DEFAULT_STRENGTH, step=0.01,
                                                   label="Denoising strength")
                    hires_note = gr.Markdown(elem_id="txt2img-hires-size")
                controlnet = control_accordion(manager, TASK, width, height)
                seed, batch = seed_widgets()
                variation_seed, variation_strength = variation_widgets(TASK)
                fast = fast_toggle(manager)
                fast_decode = fast_decode_toggle(manager, TASK)
                network_picker(manager, prompt, TASK, sampler, steps, guidance, fast_decode=fast_decode)
                denoise = gr.Checkbox(label="Also make a denoising video (the predicted image at every step)")
                plot = plot_panel(TASK)
                png = png_info_panel(TASK)
            with gr.Column():
                bar, gallery, preview, info, params = output_widgets("Images", TASK)
                variations = variations_panel(TASK)
                steps_video = gr.Video(label="Denoising video", visible=False, height=360, interactive=False,
                                       elem_id="txt2img-steps-video")
                with gr.Row():
                    to_img2img = gr.Button("Send to image to image", size="sm")
                    to_inpaint = gr.Button("Send to inpaint", size="sm")
        control = gr.State(SessionControl())

    # 3. wiring
    inputs = {"prompt": prompt, "negative_prompt": negative, "num_inference_steps": steps,
              "guidance_scale": guidance, "width": width, "height": height, "seed": seed,
              "batch_count": batch, "sampler": sampler, "denoise_video": denoise, "fast": fast, "styles": styles,
              "hires": hires, "hires_scale": hires_scale, "hires_upscaler": hires_upscaler, "hires_steps": hires_steps,
              "hires_strength": hires_strength, "variation_seed": variation_seed,
              "variation_strength": variation_strength, "controlnet": controlnet.state, "control": control,
              "fast_decode": fast_decode}
    check_inputs_match(txt2img, list(inputs))
    event = dict(inputs=list(inputs.values()), outputs=[gallery, preview, info, params, steps_video],
                 control=control, stop=stop, bar=bar)
    wire_run(run.click, on_gpu(txt2img, "txt2img"), api_name="txt2img", **event)
    wire_run(prompt.submit, on_gpu(txt2img, "txt2img"), api_name=False, **event)
    wire_stop(stop, control, "stop_txt2img")
    own = [widget for name, widget in inputs.items() if name not in ("seed", "batch_count", "variation_seed",
                                                                     "variation_strength", "control")]
    wire_selection(variations, gallery)
    wire_run(variations.button.click, on_gpu(variations_of(txt2img), "txt2img"),
             inputs=[*own, gallery, variations.selected, variations.count, variations.start, variations.strength,
                     control], outputs=event["outputs"], api_name="make_variations", control=control, stop=stop, bar=bar)
    plot_inputs = {"prompt": prompt, "negative_prompt": negative, "num_inference_steps": steps,
                   "guidance_scale": guidance, "width": width, "height": height, "seed": seed, "sampler": sampler,
                   "fast": fast, "variation_seed": variation_seed, "variation_strength": variation_strength,
                   "controlnet": controlnet.state, **{name: plot.widgets[name] for name in AXIS_INPUTS}}
    check_inputs_match(xyz_plot, [*plot_inputs, "control", "pace", "fast_decode"])
    check_inputs_match(xyz_plan, [*plot_inputs, "pace"])
    plot_run = [*plot_inputs.values(), control, plot.pace, fast_decode]
    wire_run(plot.run.click, on_gpu(xyz_plot, "xyz_plot"), inputs=plot_run,
             outputs=[gallery, preview, info, params, plot.video, plot.plan, plot.pace], api_name="xyz_plot",
             control=control, stop=stop, bar=bar)
    wire_plan(plot, xyz_plan, [*plot_inputs.values(), plot.pace], api_name="xyz_plan")
    # the Denoising video box shows only when there is a video in it
    steps_video.change(lambda v: gr.Video(visible=bool(v)), inputs=steps_video, outputs=steps_video, api_name=False,
                       queue=False, show_progress="hidden")
    loads = {"prompt": prompt, "negative_prompt": negative, "num_inference_steps": steps, "guidance_scale": guidance,
             "width": width, "height": height, "seed": seed, "sampler": sampler, "hires": hires,
             "hires_scale": hires_scale, "hires_upscaler": hires_upscaler, "hires_steps": hires_steps,
             "hires_strength": hires_strength, "styles": styles, "variation_seed": variation_seed,
             "variation_strength": variation_strength, "fast_decode": fast_decode}
    wire_png_info(manager, png, loads, controlnet, api_name="png_info")
    for trigger in (hires.change, width.change, height.change, hires_scale.change):
        trigger(hires_line, inputs=[hires, width, height, hires_scale], outputs=hires_note, api_name=False,
                queue=False, show_progress="hidden")
    return SimpleNamespace(fast=fast, prompt=prompt, negative=negative, gallery=gallery, to_img2img=to_img2img,
                           to_inpaint=to_inpaint, sizes=[width, height])
