"""Animate: Deforum-style 2D and 3D camera moves and video-to-video, every frame made from the one before."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from engine.image.request import MAX_STEPS
from engine.jobs import gpu_time
from engine.jobs.runner import run_job
from engine.pipeline.schedulers import DEFAULT_SAMPLER, sampler_names
from engine.video.animate import MAX_FRAMES, AnimateRequest, depth
from engine.video.animate import deforum_settings as deforum
from engine.video.animate.frames import AnimateUpdate, diffusion_frames
from engine.video.animate.request import MAX_CADENCE, request_from_dict
from engine.video.animate.run import (
    AnimateResult,
    animate,
    finish,
    read_plan,
    render_chunk,
    resume,
    start,
)
from engine.video.animate.schedules import format_prompts, parse_prompts
from tabs import gpu
from tabs.common import check_inputs_match, fast_decode_toggle, fast_toggle
from tabs.extras_common import network_picker
from tabs.running import run_buttons, stream, wire_run, wire_stop
from tabs.session import SessionControl, user_errors
from tabs.walk_common import checked_plan, length_note, new_run_paths, video_outputs
from widgets.image_upload import ImageUpload

TASK = "animate"
MODES = {"2D": "2d", "3D": "3d", "Video input": "video"}
COLOURS = {"None": "none", "RGB": "rgb", "HSV": "hsv", "LAB": "lab"}
BORDERS = ["replicate", "wrap", "reflect"]
SCHEDULE_FIELDS = ("strength", "zoom", "angle", "translation_x", "translation_y", "translation_z", "rotation_3d_x",
                   "rotation_3d_y", "rotation_3d_z", "fov", "guidance", "noise")
DEFAULT = AnimateRequest()
EXAMPLE_PROMPTS = "0: a misty pine forest at dawn, photo\n24: a snowy mountain lake at noon, photo"
STRENGTH_INFO = ("Deforum's strength: the share of the previous frame kept (1 = no denoising, the frame is only "
                 "warped). diffusers' strength is 1 − this.")


def describe(update: AnimateUpdate):
    """Progress text ("frame 12/120, diffusion 4/40"), with the newest frame as the preview."""
    return update.fraction, update.text[0].upper() + update.text[1:], update.image


def plan_note(mode: str, num_frames, fps, cadence) -> str:
    """Shown before the run: how long the video is and how many frames are diffused."""
    if MODES.get(mode) == "video":
        return "Video length: set by the source video (its frames ÷ nth, at its frame rate ÷ nth)."
    note = length_note(num_frames, fps)
    try:
        frames, step = int(num_frames), max(1, int(cadence))
        return f"{note} Diffusion runs on {-(-frames // step)} of the {frames} frames (cadence {step})."
    except (TypeError, ValueError):
        return note


def outputs(result: AnimateResult):
    """Video, frame gallery, downloads (MP4, GIF, plan, Deforum settings), latest frame, info, plan to resume."""
    gif = result.video.with_suffix(".gif") if result.video else None
    files = [str(p) for p in (result.video, gif, result.settings, result.plan) if p and p.exists()]
    info = [*result.notes, f"Seed: {result.parameters.get('seed')} ({result.parameters.get('seed_behavior')}); "
                           f"{result.diffusions} frames diffused in this run."]
    if result.video is None:
        info.append("No frame was finished, so there is no video yet.")
    gallery = [str(p) for p in result.frames]
    return (str(result.video) if result.video else None, gallery, files, gallery[-1] if gallery else None,
            "\n\n".join(info), str(result.plan) if result.interrupted else "")


def run(job, control, progress, gate):
    """Stream frames to the preview, then hand back every output of the finished (or stopped) animation."""
    yield from show(stream(job, control, progress, gate, describe=describe))


def show(events):
    """The video outputs for a stream of (preview, None) ... (None, result)."""
    for preview, result in events:
        if result is None:
            yield gr.skip(), gr.skip(), gr.skip(), preview, gr.skip(), gr.skip()
        else:
            yield outputs(result)


def chunk_work(plan) -> tuple[gpu_time.Work, float]:
    """One diffused frame's work, and the share of frames that are diffused (1 / cadence; every frame for video)."""
    _, data = read_plan(Path(plan))
    req = request_from_dict(data["request"])
    work = gpu_time.Work(steps=req.num_inference_steps, width=req.width, height=req.height,
                         extra_seconds=gpu_time.FACE_SECONDS)  # warps, colour matching and depth, as for a face
    return work, len(diffusion_frames(req)) / max(req.num_frames, 1)


def chunk_seconds(plan, frames) -> int:
    work, share = chunk_work(plan)
    return gpu_time.seconds_for(replace(work, images=max(1, round(int(frames) * share)) + 1))


def frames_per_call(plan) -> int:
    """Frames per GPU call: as many as keep a call near ZeroGPU's default ask (whole cadence segments follow)."""
    work, share = chunk_work(plan)
    return max(1, int(gpu_time.frames_per_call(work) / share))


def build(manager) -> SimpleNamespace:
    """The tab's widgets and events; returns the size sliders, which follow the model's default size."""
    # 1. handlers
    def animate_run(prompts, negative_prompt, mode, num_frames, fps, cadence, strength, zoom, angle, translation_x,
                    translation_y, translation_z, rotation_3d_x, rotation_3d_y, rotation_3d_z, fov, guidance, noise,
                    color_coherence, border, seed, seed_behavior, num_inference_steps, sampler, width, height,
                    prompt_blend, init_image, video, nth, gif, fast, control, fast_decode=False, progress=gr.Progress()):
        with user_errors():
            req = AnimateRequest(
                prompts=parse_prompts(prompts), negative_prompt=negative_prompt or "",
                mode=MODES.get(mode, mode), num_frames=num_frames, fps=fps, cadence=cadence, strength=strength,
                zoom=zoom, angle=angle, translation_x=translation_x, translation_y=translation_y,
                translation_z=translation_z, rotation_3d_x=rotation_3d_x, rotation_3d_y=rotation_3d_y,
                rotation_3d_z=rotation_3d_z, fov=fov, guidance=guidance, noise=noise,
                color_coherence=COLOURS.get(color_coherence, color_coherence), border=border,
                seed=-1 if seed is None else int(seed), seed_behavior=seed_behavior,
                num_inference_steps=num_inference_steps, sampler=sampler, width=width, height=height,
                prompt_blend=prompt_blend, init_image=init_image or None, video=video or None, nth=nth,
                gif=bool(gif), fast=bool(fast), fast_decode=bool(fast_decode))
            paths = new_run_paths(TASK)
        if gpu.zero_gpu():
            with user_errors():
                plan = start(manager, req, paths)
            yield from chunked(plan, control, progress)
            return
        job = lambda on_frame, ctl: run_job(animate, manager, req, paths, on_frame, ctl)  # noqa: E731
        yield from run(job, control, progress, manager.gate)

    def animate_resume(plan, control, progress=gr.Progress()):
        path = checked_plan(plan)
        if gpu.zero_gpu():
            yield from chunked(path, control, progress)
            return
        yield from run(lambda on_frame, ctl: run_job(resume, manager, path, on_frame, ctl), control, progress,
                       manager.gate)

    # ZeroGPU: an animation as one GPU call per few frames, from its plan; encoded after, without the GPU
    def animate_chunk(plan, frames, control):
        job = lambda on_frame, ctl: render_chunk(manager, Path(plan), frames, on_frame, ctl)  # noqa: E731
        yield from gpu.pump(job, control)

    chunk = gpu.on_gpu(animate_chunk, lambda plan, frames, control=None: chunk_seconds(plan, frames), inner=True)

    def chunked(plan, control, progress):
        frames = frames_per_call(plan)
        note = (f"This animation is made about {frames} frames per GPU call; each call asks ZeroGPU for up to "
                f"{chunk_seconds(plan, frames)} s.")
        yield from show(gpu.run_chunks(chunk, (str(plan), frames), control, progress, manager.gate, describe,
                                       lambda: finish(plan), note))

    def load_settings(file):
        """Fill the form from a Deforum settings file; keys it doesn't use are named."""
        if not file:
            return [gr.skip()] * len(form) + [""]
        with user_errors():
            req, unused = deforum.read_settings(file)
        values = {"prompts": format_prompts(req.prompts), "negative_prompt": req.negative_prompt,
                  "mode": next(k for k, v in MODES.items() if v == str(req.mode).lower().replace("video input",
                                                                                              "video")),
                  "num_frames": req.num_frames, "fps": req.fps, "cadence": req.cadence,
                  "color_coherence": next((k for k, v in COLOURS.items() if v == req.color_coherence), "LAB"),
                  "border": req.border if req.border in BORDERS else "replicate", "seed": req.seed,
                  "seed_behavior": req.seed_behavior, "num_inference_steps": req.num_inference_steps,
                  "sampler": req.sampler if req.sampler in sampler_names() else DEFAULT_SAMPLER,
                  "width": req.width, "height": req.height, "prompt_blend": req.prompt_blend, "nth": req.nth,
                  **{name: getattr(req, name) for name in SCHEDULE_FIELDS}}
        note = deforum.unused_note(unused) or "Every key of the settings file was used."
        return [values.get(name, gr.skip()) for name in form] + [note]

    def mode_note(mode):
        if MODES.get(mode) == "3d" and not depth.depth_available(manager.weights_dir):
            return f"⚠️ {depth.MISSING}"
        if MODES.get(mode) == "video":
            return "Upload the source video under *Start from*; its sound is kept."
        return ""

    # 2. layout
    with gr.Tab("Animate", id=TASK):
        with gr.Row(equal_height=True):
            with gr.Column(scale=4):
                prompts = gr.Textbox(label="Prompts, one per line as 'frame: prompt'", lines=3, value=EXAMPLE_PROMPTS,
                                     elem_id="animate-prompts")
                negative = gr.Textbox(label="Negative prompt", lines=1)
            with gr.Column(scale=1, min_width=160):
                go, stop = run_buttons(TASK, "Animate")
                again = gr.Button("Resume stopped run", elem_id="animate-resume")
        with gr.Row():
            with gr.Column():
                with gr.Row():
                    mode = gr.Radio(list(MODES), value="2D", label="Mode", elem_id="animate-mode")
                    cadence = gr.Slider(1, MAX_CADENCE, value=DEFAULT.cadence, step=1, label="Cadence",
                                        info="diffuse every Nth frame; the ones between are warped and blended")
                mode_info = gr.Markdown(elem_id="animate-mode-note")
                with gr.Row():
                    frames = gr.Slider(1, MAX_FRAMES, value=DEFAULT.num_frames, step=1, label="Frames")
                    fps = gr.Slider(1, 60, value=DEFAULT.fps, step=1, label="Frames per second")
                length = gr.Markdown(plan_note("2D", DEFAULT.num_frames, DEFAULT.fps, DEFAULT.cadence),
                                     elem_id="animate-length")
                strength = gr.Textbox(value=DEFAULT.strength, label="Strength schedule", info=STRENGTH_INFO,
                                      elem_id="animate-strength")
                with gr.Accordion("Camera motion (Deforum schedules, e.g. 0:(1.0), 30:(1.02) or expressions of t)",
                                  open=False):
                    with gr.Row():
                        zoom = gr.Textbox(value=DEFAULT.zoom, label="Zoom (2D)", elem_id="animate-zoom")
                        angle = gr.Textbox(value=DEFAULT.angle, label="Angle (2D)")
                    with gr.Row():
                        translation_x = gr.Textbox(value=DEFAULT.translation_x, label="Translation x")
                        translation_y = gr.Textbox(value=DEFAULT.translation_y, label="Translation y")
                        translation_z = gr.Textbox(value=DEFAULT.translation_z, label="Translation z (3D)")
                    with gr.Row():
                        rotation_x = gr.Textbox(value=DEFAULT.rotation_3d_x, label="Rotation 3D x")
                        rotation_y = gr.Textbox(value=DEFAULT.rotation_3d_y, label="Rotation 3D y")
                        rotation_z = gr.Textbox(value=DEFAULT.rotation_3d_z, label="Rotation 3D z")
                    fov = gr.Textbox(value=DEFAULT.fov, label="Field of view (3D)")
                with gr.Accordion("Start from (init image, or the source video)", open=False):
                    with gr.Row():
                        init_image = ImageUpload(label="Init image (2D/3D; empty: frame 0 from the prompt)",
                                                 type="filepath", sources=["upload", "clipboard"], height=160)
                        source = gr.Video(label="Source video (Video input)", sources=["upload"], height=160)
                    nth = gr.Slider(1, 30, value=1, step=1, label="Use every nth frame of the video")
                with gr.Accordion("More settings", open=False):
                    with gr.Row():
                        colour = gr.Dropdown(list(COLOURS), value="LAB", label="Colour coherence (match frame 0)")
                        border = gr.Dropdown(BORDERS, value=DEFAULT.border, label="Border")
                        blend = gr.Slider(0, 24, value=0, step=1, label="Prompt blend (frames)")
                    with gr.Row():
                        guidance = gr.Textbox(value=DEFAULT.guidance, label="Guidance (CFG) schedule")
                        noise = gr.Textbox(value=DEFAULT.noise, label="Noise schedule")
                    with gr.Row():
                        seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random)")
                        seed_behavior = gr.Dropdown(["iter", "fixed", "random"], value="iter", label="Seed behaviour")
                    with gr.Row():
                        sampler = gr.Dropdown(sampler_names(), value=DEFAULT_SAMPLER, label="Sampler")
                        steps = gr.Slider(1, MAX_STEPS, value=DEFAULT.num_inference_steps, step=1, label="Steps")
                    with gr.Row():
                        width = gr.Slider(64, 1024, value=manager.defaults().width, step=8, label="Width")
                        height = gr.Slider(64, 1024, value=manager.defaults().width, step=8, label="Height")
                    with gr.Row():
                        gif = gr.Checkbox(label="Also make a GIF")
                        fast = fast_toggle(manager, fewstep_ok=False)
                        fast_decode = fast_decode_toggle(manager, TASK)
                        network_picker(manager, prompts, "animate")
                with gr.Accordion("Deforum settings file", open=False):
                    settings_file = gr.File(label="Load a settings file saved by Deforum (.txt or .json)",
                                            file_types=[".json", ".txt"], type="filepath",
                                            elem_id="animate-settings")
                    settings_note = gr.Markdown(elem_id="animate-settings-note")
                plan = gr.Textbox(label="Stopped run (resumable)", interactive=False, elem_id="animate-plan")
            with gr.Column():
                bar, player, gallery, files, latest, info = video_outputs(TASK)
        control = gr.State(SessionControl())

    # 3. wiring
    inputs = {"prompts": prompts, "negative_prompt": negative, "mode": mode, "num_frames": frames, "fps": fps,
              "cadence": cadence, "strength": strength, "zoom": zoom, "angle": angle, "translation_x": translation_x,
              "translation_y": translation_y, "translation_z": translation_z, "rotation_3d_x": rotation_x,
              "rotation_3d_y": rotation_y, "rotation_3d_z": rotation_z, "fov": fov, "guidance": guidance,
              "noise": noise, "color_coherence": colour, "border": border, "seed": seed,
              "seed_behavior": seed_behavior, "num_inference_steps": steps, "sampler": sampler, "width": width,
              "height": height, "prompt_blend": blend, "init_image": init_image, "video": source, "nth": nth,
              "gif": gif, "fast": fast, "control": control, "fast_decode": fast_decode}
    check_inputs_match(animate_run, list(inputs))
    form = [name for name in inputs if name not in ("init_image", "video", "gif", "fast", "fast_decode", "control")]
    outs = [player, gallery, files, latest, info, plan]
    common = dict(outputs=outs, control=control, stop=stop, bar=bar)
    wire_run(go.click, gpu.outer(animate_run, chunk, TASK), inputs=list(inputs.values()), api_name="animate",
             **common)
    wire_run(again.click, gpu.outer(animate_resume, chunk), inputs=[plan, control], api_name="animate_resume",
             **common)
    wire_stop(stop, control, "stop_animate")
    settings_file.upload(load_settings, inputs=settings_file, outputs=[inputs[n] for n in form] + [settings_note],
                         api_name="animate_load_settings", queue=False)
    mode.change(mode_note, inputs=mode, outputs=mode_info, api_name=False, queue=False)
    for widget in (mode, frames, fps, cadence):
        widget.change(plan_note, inputs=[mode, frames, fps, cadence], outputs=length, api_name=False, queue=False)
    return SimpleNamespace(sizes=[width, height], fast=fast)

