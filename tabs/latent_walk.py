"""Latent walk: morph between prompts and seeds, as an MP4 whose frames are saved as they are made."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from engine.video import walk_request
from engine.video.walk_request import WalkRequest, parse_prompts, parse_seeds
from tabs.common import check_inputs_match, fast_decode_toggle, fast_toggle, sampling_widgets
from tabs.extras_common import network_picker
from tabs.running import run_buttons, wire_run, wire_stop
from tabs.session import SessionControl, user_errors
from tabs.walk_common import handler, length_note, run_new, run_resume, video_outputs

TASK = "latent_walk"
EXAMPLE_PROMPTS = "a misty pine forest at dawn, photo\na snowy mountain lake at noon, photo\na desert canyon at sunset, photo"


def build(manager) -> SimpleNamespace:
    """The tab's widgets and events; returns the size sliders, which follow the model's default size."""
    # 1. handlers
    def walk_run(prompts, seeds, negative_prompt, num_frames, fps, num_inference_steps, guidance_scale, sampler,
                 width, height, loop, smooth, batch_size, gif, fast, control, fast_decode=False,
                 progress=gr.Progress()):
        with user_errors():
            req = WalkRequest(prompts=parse_prompts(prompts), seeds=parse_seeds(seeds),
                              negative_prompt=negative_prompt, num_frames=num_frames, fps=fps,
                              num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                              sampler=sampler, width=width, height=height, loop=loop, smooth=smooth,
                              batch_size=batch_size, gif=gif, fast=bool(fast), fast_decode=bool(fast_decode))
        yield from run_new(manager, req, control, progress)

    def walk_resume(plan, control, progress=gr.Progress()):
        yield from run_resume(manager, plan, control, progress)

    # 2. layout
    with gr.Tab("Latent walk", id=TASK):
        with gr.Row(equal_height=True):
            with gr.Column(scale=4):
                prompts = gr.Textbox(label="Prompts, one per line (2 or more)", lines=4, value=EXAMPLE_PROMPTS,
                                     elem_id="walk-prompts")
                seeds = gr.Textbox(label="Seeds, one per prompt ('random' or blank = random)", lines=1,
                                   value="1, 2, 3")
            with gr.Column(scale=1, min_width=160):
                go, stop = run_buttons("walk", "Make video")
                resume = gr.Button("Resume stopped run", elem_id="walk-resume")
        with gr.Row():
            with gr.Column():
                negative = gr.Textbox(label="Negative prompt", lines=1)
                with gr.Row():
                    frames = gr.Slider(2, walk_request.MAX_FRAMES, value=24, step=1, label="Frames (whole video)")
                    fps = gr.Slider(1, 60, value=12, step=1, label="Frames per second")
                length = gr.Markdown(length_note(24, 12), elem_id="walk-length")
                sampler, steps, guidance = sampling_widgets()
                with gr.Row():
                    width = gr.Slider(64, 1024, value=manager.defaults().width, step=8, label="Width")
                    height = gr.Slider(64, 1024, value=manager.defaults().width, step=8, label="Height")
                with gr.Row():
                    loop = gr.Checkbox(label="Loop back to the first prompt")
                    smooth = gr.Checkbox(label="Smooth: even change between frames (renders twice)")
                batch = gr.Slider(1, walk_request.MAX_BATCH_SIZE, value=1, step=1, label="Batch size (frames per call)")
                gif = gr.Checkbox(label="Also make a GIF")
                fast = fast_toggle(manager, fewstep_ok=False)
                fast_decode = fast_decode_toggle(manager, "walk")
                network_picker(manager, prompts, "walk")
                plan = gr.Textbox(label="Stopped run (resumable)", interactive=False, elem_id="walk-plan")
            with gr.Column():
                bar, player, gallery, files, latest, info = video_outputs("walk")
        control = gr.State(SessionControl())

    # 3. wiring
    inputs = {"prompts": prompts, "seeds": seeds, "negative_prompt": negative, "num_frames": frames, "fps": fps,
              "num_inference_steps": steps, "guidance_scale": guidance, "sampler": sampler, "width": width,
              "height": height, "loop": loop, "smooth": smooth, "batch_size": batch, "gif": gif, "fast": fast,
              "control": control, "fast_decode": fast_decode}
    check_inputs_match(walk_run, list(inputs))
    outs = [player, gallery, files, latest, info, plan]
    common = dict(outputs=outs, control=control, stop=stop, bar=bar)
    wire_run(go.click, handler(manager, walk_run), inputs=list(inputs.values()), api_name="latent_walk", **common)
    wire_run(resume.click, handler(manager, walk_resume), inputs=[plan, control], api_name="latent_walk_resume", **common)
    wire_stop(stop, control, "stop_latent_walk")
    for widget in (frames, fps):
        widget.change(length_note, inputs=[frames, fps], outputs=length, api_name=False, queue=False)
    return SimpleNamespace(sizes=[width, height], fast=fast)
