"""Dream video: one prompt, a random walk through noise (Karpathy's "stable diffusion walk"), as an MP4."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from engine.pipeline.schedulers import is_stochastic
from engine.video import walk_request
from engine.video.walk_request import dream_request
from tabs.common import check_inputs_match, fast_decode_toggle, fast_toggle, sampling_widgets
from tabs.extras_common import network_picker
from tabs.running import run_buttons, wire_run, wire_stop
from tabs.session import SessionControl, user_errors
from tabs.walk_common import handler, length_note, run_new, run_resume, video_outputs

TASK = "dream"


def sampler_warning(sampler: str) -> str:
    """Ancestral and SDE samplers add fresh noise every step, which makes a video flicker."""
    if sampler and is_stochastic(sampler):
        return f"⚠️ {sampler} adds fresh noise every step, so the video will flicker; prefer DPM++ 2M Karras or DDIM."
    return ""


def build(manager) -> SimpleNamespace:
    """The tab's widgets and events; returns the size sliders, which follow the model's default size."""
    # 1. handlers
    def dream_run(prompt, negative_prompt, num_keyframes, seed, num_frames, fps, num_inference_steps,
                  guidance_scale, sampler, width, height, loop, batch_size, gif, fast, control, fast_decode=False,
                  progress=gr.Progress()):
        with user_errors():
            req = dream_request(prompt, num_keyframes, None if seed is None else int(seed),
                                negative_prompt=negative_prompt, num_frames=num_frames, fps=fps,
                                num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                                sampler=sampler, width=width, height=height, loop=loop, batch_size=batch_size,
                                gif=gif, fast=bool(fast), fast_decode=bool(fast_decode))
        yield from run_new(manager, req, control, progress)

    def dream_resume(plan, control, progress=gr.Progress()):
        yield from run_resume(manager, plan, control, progress)

    # 2. layout
    with gr.Tab("Dream video", id=TASK):
        with gr.Row(equal_height=True):
            with gr.Column(scale=4):
                prompt = gr.Textbox(label="Prompt", lines=2, value="an enchanted forest with glowing mushrooms, photo",
                                    elem_id="dream-prompt")
                negative = gr.Textbox(label="Negative prompt", lines=1)
            with gr.Column(scale=1, min_width=160):
                go, stop = run_buttons("dream", "Dream")
                resume = gr.Button("Resume stopped run", elem_id="dream-resume")
        with gr.Row():
            with gr.Column():
                with gr.Row():
                    keyframes = gr.Slider(2, 100, value=4, step=1, label="Random keyframe noises")
                    seed = gr.Number(value=-1, precision=0, label="First seed (-1 = random)")
                with gr.Row():
                    frames = gr.Slider(2, walk_request.MAX_FRAMES, value=36, step=1, label="Frames (whole video)")
                    fps = gr.Slider(1, 60, value=12, step=1, label="Frames per second")
                length = gr.Markdown(length_note(36, 12), elem_id="dream-length")
                sampler, steps, guidance = sampling_widgets()
                warning = gr.Markdown()
                with gr.Row():
                    width = gr.Slider(64, 1024, value=manager.defaults().width, step=8, label="Width")
                    height = gr.Slider(64, 1024, value=manager.defaults().width, step=8, label="Height")
                loop = gr.Checkbox(label="Loop back to the first noise")
                batch = gr.Slider(1, walk_request.MAX_BATCH_SIZE, value=1, step=1, label="Batch size (frames per call)")
                gif = gr.Checkbox(label="Also make a GIF")
                fast = fast_toggle(manager, fewstep_ok=False)
                fast_decode = fast_decode_toggle(manager, "dream")
                network_picker(manager, prompt, "dream")
                plan = gr.Textbox(label="Stopped run (resumable)", interactive=False, elem_id="dream-plan")
            with gr.Column():
                bar, player, gallery, files, latest, info = video_outputs("dream")
        control = gr.State(SessionControl())

    # 3. wiring
    inputs = {"prompt": prompt, "negative_prompt": negative, "num_keyframes": keyframes, "seed": seed,
              "num_frames": frames, "fps": fps, "num_inference_steps": steps, "guidance_scale": guidance,
              "sampler": sampler, "width": width, "height": height, "loop": loop, "batch_size": batch, "gif": gif, "fast": fast,
              "control": control, "fast_decode": fast_decode}
    check_inputs_match(dream_run, list(inputs))
    outs = [player, gallery, files, latest, info, plan]
    common = dict(outputs=outs, control=control, stop=stop, bar=bar)
    wire_run(go.click, handler(manager, dream_run), inputs=list(inputs.values()), api_name="dream", **common)
    wire_run(resume.click, handler(manager, dream_resume), inputs=[plan, control], api_name="dream_resume", **common)
    wire_stop(stop, control, "stop_dream")
    sampler.change(sampler_warning, inputs=sampler, outputs=warning, api_name=False, queue=False)
    for widget in (frames, fps):
        widget.change(length_note, inputs=[frames, fps], outputs=length, api_name=False, queue=False)
    return SimpleNamespace(sizes=[width, height], fast=fast)
