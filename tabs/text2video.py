"""Text to video: a short clip from a prompt with an AnimateDiff motion adapter over the loaded model."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from engine.image.request import MAX_STEPS
from engine.jobs.runner import run_job
from engine.video.motion import adapter as motion_adapter
from engine.video.motion.text2video import (
    DEFAULT_SAMPLER,
    MAX_FRAMES,
    MIN_FRAMES,
    STOP_NOTE,
    Text2VideoRequest,
    Text2VideoResult,
    Text2VideoUpdate,
    check_text2video,
    defaults_for,
    describe_estimate,
    lightning_of,
    motion_samplers,
    resume_text_to_video,
    text_to_video,
)
from tabs.common import check_inputs_match, fast_decode_offer, fast_decode_toggle, on_gpu
from tabs.running import run_buttons, stream, wire_run, wire_stop
from tabs.session import SessionControl, user_errors
from tabs.walk_common import checked_plan, new_run_paths, video_outputs

TASK = "text2video"
EXAMPLE_PROMPT = "a red fox walking through fresh snow in a pine forest, photo"
DECODE_DEFAULT = "with a Lightning adapter"  # when Fast decode is ticked for the user
FRAME_PROMPTS_INFO = ("One per line as 'frame: prompt', e.g. '12: the fox runs'. The prompt above opens the clip; "
                      "the clip moves between them (FreeNoise, turned on for you).")


def describe(update: Text2VideoUpdate):
    """Progress text for the whole clip: every frame is denoised together, one step at a time."""
    return update.fraction, f"Step {update.step}/{update.steps}, all frames together", update.preview


def outputs(result: Text2VideoResult, estimate: str):
    """Video, frames, downloads (MP4, GIF, settings), frame 0, info, the refreshed time estimate, and the stopped
    run to resume (empty once the clip is finished)."""
    files = [str(p) for p in (result.video, result.gif, result.settings) if p and p.exists()]
    info = [*result.notes, f"Seed: {result.seed}"]
    if result.seconds_per_step:
        info.append(f"{result.seconds_per_step:.2f} s a step for {len(result.frames)} frames.")
    if result.video is None:
        info.append("No step was finished, so there is no clip.")
    gallery = [str(p) for p in result.frames]
    return (str(result.video) if result.video else None, gallery, files, gallery[0] if gallery else None,
            "\n\n".join(info), estimate, str(result.settings) if result.interrupted else "")


def build(manager) -> SimpleNamespace:
    """The tab's widgets and events; returns the size sliders."""
    start = defaults_for(manager.device, manager.defaults())

    # 1. handlers
    def request(prompt, negative_prompt, frame_prompts, num_frames, fps, num_inference_steps, guidance_scale, seed,
                width, height, sampler, free_noise, gif, motion_adapter_name,
                fast_decode=False) -> Text2VideoRequest:
        return Text2VideoRequest(
            prompt=prompt or "", negative_prompt=negative_prompt or "", frame_prompts=frame_prompts or "",
            num_frames=num_frames, fps=fps, num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
            seed=-1 if seed is None else int(seed), width=width, height=height, sampler=sampler,
            free_noise=bool(free_noise), gif=bool(gif), motion_adapter=motion_adapter_name or None,
            fast_decode=bool(fast_decode))

    def text2video_run(prompt, negative_prompt, frame_prompts, num_frames, fps, num_inference_steps, guidance_scale,
                       seed, width, height, sampler, free_noise, gif, motion_adapter, control, fast_decode=False,
                       progress=gr.Progress()):
        req = request(prompt, negative_prompt, frame_prompts, num_frames, fps, num_inference_steps, guidance_scale,
                      seed, width, height, sampler, free_noise, gif, motion_adapter, fast_decode)
        with user_errors():
            check_text2video(req)
            paths = new_run_paths(TASK)
        yield *[gr.skip()] * 6, str(paths.plan)  # known before the first step, so a crash can still be resumed
        job = lambda on_step, ctl: run_job(text_to_video, manager, req, paths, on_step, ctl)  # noqa: E731
        yield from show(job, control, progress, req)

    def text2video_resume(prompt, negative_prompt, frame_prompts, num_frames, fps, num_inference_steps,
                          guidance_scale, seed, width, height, sampler, free_noise, gif, motion_adapter, run, control,
                          fast_decode=False, progress=gr.Progress()):
        """Resume: the stopped clip continues from its last saved step, if the form still has its settings (Fast
        decode may differ: it only changes how the finished latents become frames)."""
        req = request(prompt, negative_prompt, frame_prompts, num_frames, fps, num_inference_steps, guidance_scale,
                      seed, width, height, sampler, free_noise, gif, motion_adapter, fast_decode)
        plan = checked_plan(run)
        job = lambda on_step, ctl: run_job(resume_text_to_video, manager, plan, on_step, ctl, req)  # noqa: E731
        yield from show(job, control, progress, req)

    def show(job, control, progress, req):
        for preview, result in stream(job, control, progress, manager.gate, describe=describe):
            if result is None:
                yield gr.skip(), gr.skip(), gr.skip(), preview, gr.skip(), gr.skip(), gr.skip()
            else:
                yield outputs(result, describe_estimate(manager, req))

    def estimate(prompt, num_frames, fps, num_inference_steps, guidance_scale, width, height):
        req = Text2VideoRequest(prompt=prompt or "x", num_frames=num_frames, fps=fps,
                                num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                                width=width, height=height)
        return describe_estimate(manager, req)

    def adapter_note(choice):
        """Why text to video can't run now and how to fix it, or which adapter it uses."""
        try:
            source = motion_adapter.resolve_adapter(choice, manager.model_name, manager.weights_dir)
        except ValueError as exc:
            return f"⚠️ {exc}"
        problem = motion_adapter.availability(source)
        if problem:
            return f"⚠️ {problem}"
        fast = lightning_of(source.location) or lightning_of(source.name)
        if fast:
            return f"Motion adapter: {source.name}, {fast.label}." + (
                " The 1-step adapter is experimental; 2, 4 or 8 steps give steadier clips." if fast.experimental
                else "")
        if source.kind == "tiny":
            return "Motion adapter: tiny (random, for the tiny model: it makes moving noise)."
        return f"Motion adapter: {source.name}" + (" (downloads 1.8 GB on first use)." if source.kind == "hub" and
                                                     not motion_adapter.hub_cached(source.location) else ".")

    def adapter_picked(choice, num_inference_steps, guidance_scale, sampler):
        """A Lightning adapter sets its steps, Euler and CFG 1, and Fast decode where TAESD is present (the VAE would
        cost more than its few steps); leaving one puts the usual settings back."""
        fast = lightning_of(choice)
        if fast:
            decode = True if manager.taesd_available() else gr.skip()
            return adapter_note(choice), fast.num_inference_steps, fast.guidance_scale, fast.sampler, decode
        if sampler == "Euler" and guidance_scale == 1:  # still the Lightning settings: back to the usual ones
            return adapter_note(choice), start.num_inference_steps, start.guidance_scale, start.sampler, False
        return adapter_note(choice), gr.skip(), gr.skip(), gr.skip(), gr.skip()

    def opened(choice):
        """The adapters in weights/ now, and Fast decode offered only while TAESD is (it may have been downloaded)."""
        return (adapter_note(choice), gr.Dropdown(choices=motion_adapter.adapter_choices(manager.weights_dir)),
                gr.Checkbox(**fast_decode_offer(manager, DECODE_DEFAULT, grey_when_missing=True)))

    # 2. layout
    with gr.Tab("Text to video", id=TASK) as tab:
        with gr.Row(equal_height=True):
            with gr.Column(scale=4):
                prompt = gr.Textbox(label="Prompt", lines=2, value=EXAMPLE_PROMPT, elem_id="text2video-prompt")
                negative = gr.Textbox(label="Negative prompt", lines=1, value="blurry, low quality")
            with gr.Column(scale=1, min_width=160):
                go, stop = run_buttons(TASK, "Make video")
                resume = gr.Button("Resume stopped clip", elem_id="text2video-resume")
                gr.Markdown(STOP_NOTE, elem_classes=["ds-status"], elem_id="text2video-stop-note")
        with gr.Row():
            with gr.Column():
                note = gr.Markdown(elem_id="text2video-adapter-note")
                with gr.Row():
                    frames = gr.Slider(MIN_FRAMES, MAX_FRAMES, value=start.num_frames, step=1, label="Frames")
                    fps = gr.Slider(1, 30, value=start.fps, step=1, label="Frames per second")
                with gr.Row():
                    width = gr.Slider(64, 1024, value=start.width, step=8, label="Width")
                    height = gr.Slider(64, 1024, value=start.height, step=8, label="Height")
                with gr.Row():
                    steps = gr.Slider(1, MAX_STEPS, value=start.num_inference_steps, step=1, label="Steps")
                    guidance = gr.Slider(1, 30, value=start.guidance_scale, step=0.5, label="Guidance scale (CFG)")
                length = gr.Markdown(describe_estimate(manager, start), elem_id="text2video-estimate")
                fast_decode = fast_decode_toggle(manager, TASK, DECODE_DEFAULT, grey_when_missing=True)
                with gr.Accordion("Frame prompts (longer clips that change over time)", open=False):
                    frame_prompts = gr.Textbox(label="Frame prompts", lines=3, info=FRAME_PROMPTS_INFO,
                                               placeholder="8: the fox stops and looks up", elem_id="text2video-frames")
                with gr.Accordion("More settings", open=False):
                    with gr.Row():
                        seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)")
                        sampler = gr.Dropdown(motion_samplers(), value=DEFAULT_SAMPLER, label="Sampler",
                                              info="DDIM with AnimateDiff's settings is diffusers' recommendation")
                    with gr.Row():
                        free_noise = gr.Checkbox(label="FreeNoise: sliding 16-frame windows (steadier past 16 frames)")
                        gif = gr.Checkbox(label="Also make a GIF")
                    adapter = gr.Dropdown(motion_adapter.adapter_choices(manager.weights_dir), value=None,
                                          label="Motion adapter (empty: the first in weights/, else the hub's v1-5-2)",
                                          allow_custom_value=True, elem_id="text2video-adapter")
                run = gr.Textbox(label="Stopped clip (Resume continues it from its last step)", interactive=False,
                                 elem_id="text2video-run-folder")
            with gr.Column():
                bar, player, gallery, files, latest, info = video_outputs(TASK)
        control = gr.State(SessionControl())

    # 3. wiring
    inputs = {"prompt": prompt, "negative_prompt": negative, "frame_prompts": frame_prompts, "num_frames": frames,
              "fps": fps, "num_inference_steps": steps, "guidance_scale": guidance, "seed": seed, "width": width,
              "height": height, "sampler": sampler, "free_noise": free_noise, "gif": gif, "motion_adapter": adapter,
              "control": control, "fast_decode": fast_decode}
    check_inputs_match(text2video_run, list(inputs))
    outs = [player, gallery, files, latest, info, length, run]
    wire_run(go.click, on_gpu(text2video_run, "text2video"), inputs=list(inputs.values()), api_name=TASK, outputs=outs,
             control=control, stop=stop, bar=bar)
    resume_inputs = {**{k: v for k, v in inputs.items() if k not in ("control", "fast_decode")}, "run": run,
                     "control": control, "fast_decode": fast_decode}
    check_inputs_match(text2video_resume, list(resume_inputs))
    wire_run(resume.click, on_gpu(text2video_resume, "text2video"), inputs=list(resume_inputs.values()),
             api_name="text2video_resume", outputs=outs, control=control, stop=stop, bar=bar)
    wire_stop(stop, control, "stop_text2video")
    sizes = [frames, fps, steps, guidance, width, height]
    for widget in sizes:
        widget.change(estimate, inputs=[prompt, *sizes], outputs=length, api_name=False, queue=False,
                      show_progress="hidden")
    tab.select(opened, inputs=adapter, outputs=[note, adapter, fast_decode], api_name=False, queue=False,
               show_progress="hidden")
    adapter.change(adapter_picked, inputs=[adapter, steps, guidance, sampler],
                   outputs=[note, steps, guidance, sampler, fast_decode], api_name=False, queue=False,
                   show_progress="hidden")
    return SimpleNamespace(sizes=[width, height])
