"""Aging timelapse: one face photo in, the same person at rising ages out, as stills, a grid and an MP4."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from engine.faces.aging import (
    AgingRequest,
    AgingUpdate,
    aging_timelapse,
    check_aging,
    finish,
    parse_ages,
    render_chunk,
)
from engine.faces.portrait import FaceStep
from engine.files.outputs import next_path, task_dir
from engine.jobs import gpu_time
from engine.jobs.runner import run_job
from engine.pipeline.schedulers import sampler_names
from engine.text.presets import aging_preset
from tabs import gpu
from tabs.common import check_inputs_match, check_uploads, fast_decode_toggle, result_gallery
from tabs.faces_common import (
    CONSENT,
    EXAMPLE_PHOTO,
    face_index,
    face_widgets,
    identity_slider,
    padding_slider,
    refresh_restorers,
    restore_widgets,
    restorer_choice,
    wire_faces,
    with_face_hint,
)
from tabs.running import progress_bar, run_buttons, step_of, stream, wire_run, wire_stop
from tabs.session import SessionControl, user_error
from widgets.image_upload import ImageUpload

TASK = "aging"


def describe(update):
    """Progress from the first denoising step of the first frame; a finished frame also updates the preview."""
    if isinstance(update, FaceStep):
        where = f", {update.face_label} ({update.face}/{update.faces})" if update.faces > 1 else ""
        return update.fraction, f"Frame {update.index} of {update.total} ({update.label}){where}, {step_of(update)}", None
    assert isinstance(update, AgingUpdate)
    return update.index / update.total, f"Frame {update.index} of {update.total} (age {update.age:.0f}) done", update.image


def build(manager) -> None:
    """The tab's widgets and events."""
    defaults = aging_preset().defaults

    # 1. handlers
    def aging(photo, ages, subject, strength, num_inference_steps, guidance_scale, seed, sampler,
              transition_frames, fps, captions, face, all_faces, padding, whole_photo, keep_identity, control,
              fast_decode=False, restore_faces="None", visibility=1.0,
              progress=gr.Progress()):
        if not photo:
            raise user_error("Upload a face photo to start.")
        try:
            req = AgingRequest(ages=parse_ages(ages), subject=subject, strength=strength,
                               num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, seed=seed,
                               sampler=sampler, transition_frames=transition_frames, fps=fps, captions=captions,
                               face_index=face_index(face), all_faces=bool(all_faces), padding=padding,
                               whole_photo=whole_photo, keep_identity=float(keep_identity or 0),
                               fast_decode=bool(fast_decode), restore_faces=restorer_choice(restore_faces),
                               visibility=float(visibility))
            folder = next_path(task_dir(TASK), "timelapse", "")
            job = lambda on_update, ctl: run_job(aging_timelapse,  # noqa: E731
                manager, req, photo, folder, on_update, ctl, on_step=on_update)
            events = (chunked(req, photo, folder, control, progress) if gpu.zero_gpu() else
                      stream(job, control, progress, manager.gate, describe=describe))
            for preview, result in events:
                if result is None:
                    yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), preview, gr.skip()
                else:
                    yield outputs(result)
        except (gr.Error, ValueError) as exc:
            raise user_error(with_face_hint(str(getattr(exc, "message", exc)))) from exc

    # ZeroGPU: a timelapse as one GPU call per few frames, then assembled without the GPU
    def aging_chunk(req, photo, folder, frames, control):
        job = lambda on_update, ctl: render_chunk(  # noqa: E731
            manager, req, photo, Path(folder), frames, on_update, ctl, on_step=on_update)
        yield from gpu.pump(job, control)

    def chunk_seconds(req, photo, folder, frames, control=None):
        return gpu_time.seconds_for(gpu.face_work(req, int(frames)))

    chunk = gpu.on_gpu(aging_chunk, chunk_seconds, inner=True)

    def chunked(req, photo, folder, control, progress):
        req = check_aging(req)  # the seed is picked once, for every chunk
        frames = gpu_time.frames_per_call(gpu.face_work(req))
        note = (f"This timelapse is made {frames} frames per GPU call; each call asks ZeroGPU for up to "
                f"{chunk_seconds(req, photo, folder, frames)} s.")
        return gpu.run_chunks(chunk, (req, photo, str(folder), frames), control, progress, manager.gate, describe,
                              lambda: finish(req, photo, folder), note)

    def outputs(result):
        stills = [(str(result.still_path(age)), f"Age {age}") for age, _ in result.keyframes]
        info = [*result.notes, f"Seed: {result.seed}"]
        if result.identity_note:  # measured on the edited face; "no face found in the result" where so
            info.append(result.identity_note)
        slider = (result.original, stills[-1][0]) if stills else None
        video = str(result.video) if result.video else None
        grid = str(result.grid_path) if result.grid_path else None
        return video, stills, grid, slider, stills[-1][0] if stills else None, "\n\n".join(info)

    # 2. layout: what to make and the run button first; the rarely changed settings in an accordion
    with gr.Tab("Aging timelapse", id=TASK) as tab:
        with gr.Row(equal_height=True):
            with gr.Column(scale=4):
                gr.Markdown(CONSENT, elem_classes=["ds-consent"])
                with gr.Row():
                    ages = gr.Textbox(value=", ".join(map(str, defaults["ages"])), elem_id="aging-ages", scale=3,
                                      label="Ages (e.g. 10, 20, 30 or 10-80/10)")
                    subject = gr.Radio(["woman", "man", "person"], value="person", label="Subject", scale=2)
            with gr.Column(scale=1, min_width=160):
                run, stop = run_buttons(TASK, "Make timelapse")
        with gr.Row():
            with gr.Column():
                photo = ImageUpload(type="filepath", label="Face photo", image_mode=None, height=240, elem_id="aging-photo")
                faces_found = gr.Image(label="Faces found", interactive=False, height=340, format="png",
                                       elem_id="aging-faces")
                face, all_faces, faces_note, whole, found = face_widgets(TASK)
                keep_identity = identity_slider(manager, TASK)
                fast_decode = fast_decode_toggle(manager, TASK)
                restore_faces, visibility = restore_widgets(manager, TASK)
                with gr.Accordion("More settings", open=False, elem_id="aging-settings"):
                    with gr.Row():
                        strength = gr.Slider(0.05, 1, value=defaults["strength"], step=0.01, label="Strength")
                        steps = gr.Slider(1, 150, value=defaults["num_inference_steps"], step=1, label="Steps")
                        guidance = gr.Slider(1, 30, value=defaults["guidance_scale"], step=0.5,
                                             label="Guidance scale")
                    with gr.Row():
                        seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random; every age uses it)")
                        sampler = gr.Dropdown(choices=sampler_names(), value=defaults["sampler"], label="Sampler")
                    with gr.Row():
                        transition = gr.Slider(0, 24, value=defaults["transition_frames"], step=1,
                                               label="Frames per transition (rendered in-betweens)")
                        fps = gr.Slider(1, 60, value=defaults["fps"], step=1, label="Frames per second")
                    with gr.Row():
                        padding = padding_slider()
                        captions = gr.Checkbox(value=True, label="Captions (“Age N”)")
                gr.Examples([[EXAMPLE_PHOTO, "20, 40, 60, 80", "woman"]], inputs=[photo, ages, subject])
            with gr.Column():
                with gr.Row(equal_height=False):
                    latest = gr.Image(label="Latest frame", interactive=False, height=200, min_width=200, scale=1,
                                      elem_classes=["ds-preview"], elem_id="aging-preview")
                    with gr.Column(scale=2):
                        bar = progress_bar(TASK)
                        info = gr.Markdown(elem_id="aging-info")
                video = gr.Video(label="Timelapse", autoplay=True, loop=True, height=360, interactive=False,
                                 elem_id="aging-video", elem_classes=["ds-video"])
                stills = result_gallery("Ages", columns=4, height=240, elem_id="aging-stills")
                compare = gr.ImageSlider(label="Before / after (oldest age)", type="pil", height=360,
                                         interactive=False, elem_id="aging-compare")
                grid = gr.Image(label="Grid", interactive=False, format="png", height=360, elem_id="aging-grid")
        control = gr.State(SessionControl())

    # 3. wiring
    tab.select(lambda: refresh_restorers(manager), outputs=[restore_faces, visibility], api_name=False,
               queue=False, show_progress="hidden")
    inputs = {"photo": photo, "ages": ages, "subject": subject, "strength": strength, "num_inference_steps": steps,
              "guidance_scale": guidance, "seed": seed, "sampler": sampler, "transition_frames": transition,
              "fps": fps, "captions": captions, "face": face, "all_faces": all_faces,
              "padding": padding, "whole_photo": whole, "keep_identity": keep_identity,
              "control": control, "fast_decode": fast_decode, "restore_faces": restore_faces,
              "visibility": visibility}
    check_inputs_match(aging, list(inputs))
    wire_run(run.click, gpu.outer(aging, chunk, TASK), inputs=list(inputs.values()),
             outputs=[video, stills, grid, compare, latest, info], api_name="aging", control=control, stop=stop,
             bar=bar)
    wire_stop(stop, control, "stop_aging")
    check_uploads(photo)
    wire_faces(photo, face, faces_found, faces_note, found, api_name="aging_faces")
