"""Aging timelapse: one face photo in, the same person at rising ages out, as stills, a grid and an MP4."""
from __future__ import annotations

import gradio as gr

from engine.aging import AgingRequest, AgingUpdate, aging_timelapse, parse_ages
from engine.outputs import next_path, task_dir
from engine.presets import aging_preset
from engine.schedulers import sampler_names
from tabs.common import QUEUE_ID, SessionControl, check_inputs_match, on_gpu, stream
from tabs.faces_common import CONSENT, EXAMPLE_PHOTO, face_index, face_preview, face_widgets, with_face_hint

TASK = "aging"


def describe(update: AgingUpdate):
    return update.index / update.total, f"Frame {update.index} of {update.total} (age {update.age:.0f})", update.image


def build(manager) -> None:
    """The tab's widgets and events."""
    defaults = aging_preset().defaults

    # 1. handlers
    def aging(photo, ages, subject, strength, num_inference_steps, guidance_scale, seed, sampler,
              transition_frames, fps, captions, face, padding, whole_photo, control, progress=gr.Progress()):
        if not photo:
            raise gr.Error("Upload a face photo to start.")
        try:
            req = AgingRequest(ages=parse_ages(ages), subject=subject, strength=strength,
                               num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, seed=seed,
                               sampler=sampler, transition_frames=transition_frames, fps=fps, captions=captions,
                               face_index=face_index(face), padding=padding, whole_photo=whole_photo)
            folder = next_path(task_dir(TASK), "timelapse", "")
            job = lambda on_frame, ctl: aging_timelapse(manager, req, photo, folder, on_frame, ctl)  # noqa: E731
            for preview, result in stream(job, control, progress, manager.gate, describe=describe):
                if result is None:
                    yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), preview, gr.skip()
                else:
                    yield outputs(result)
        except (gr.Error, ValueError) as exc:
            raise gr.Error(with_face_hint(str(getattr(exc, "message", exc)))) from exc

    def outputs(result):
        stills = [(str(result.still_path(age)), f"Age {age}") for age, _ in result.keyframes]
        info = [*result.notes, f"Seed: {result.seed}"]
        if result.identity:
            info.append("Identity distance to the photo (≤ 0.6 reads as the same person): " + ", ".join(
                f"age {age}: {d:.2f}" for (age, _), d in zip(result.keyframes, result.identity)))
        slider = (result.original, stills[-1][0]) if stills else None
        video = str(result.video) if result.video else None
        grid = str(result.grid_path) if result.grid_path else None
        return video, stills, grid, slider, stills[-1][0] if stills else None, "\n\n".join(info)

    # 2. layout
    with gr.Tab("Aging timelapse", id=TASK):
        gr.Markdown(CONSENT, elem_classes=["ds-consent"])
        with gr.Row():
            with gr.Column():
                photo = gr.Image(type="filepath", label="Face photo", image_mode=None, height=320,
                                 elem_id="aging-photo")
                faces_found = gr.Image(label="Faces found", interactive=False, height=200)
                faces_note = gr.Markdown()
                ages = gr.Textbox(value=", ".join(map(str, defaults["ages"])), elem_id="aging-ages",
                                  label="Ages (e.g. 10, 20, 30 or 10-80/10)")
                subject = gr.Radio(["woman", "man", "person"], value="person", label="Subject")
                with gr.Row():
                    strength = gr.Slider(0.05, 1, value=defaults["strength"], step=0.01, label="Strength")
                    steps = gr.Slider(1, 150, value=defaults["num_inference_steps"], step=1, label="Steps")
                    guidance = gr.Slider(1, 30, value=defaults["guidance_scale"], step=0.5, label="Guidance scale")
                with gr.Row():
                    seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random; every age uses it)")
                    sampler = gr.Dropdown(choices=sampler_names(), value=defaults["sampler"], label="Sampler")
                with gr.Row():
                    transition = gr.Slider(0, 24, value=defaults["transition_frames"], step=1,
                                           label="Frames per transition (rendered in-betweens)")
                    fps = gr.Slider(1, 60, value=defaults["fps"], step=1, label="Frames per second")
                captions = gr.Checkbox(value=True, label="Captions (“Age N”)")
                face, padding, whole = face_widgets()
                with gr.Row():
                    run = gr.Button("Make timelapse", variant="primary", elem_id="aging-run")
                    stop = gr.Button("Stop", variant="stop", elem_id="aging-stop")
                gr.Examples([[EXAMPLE_PHOTO, "20, 40, 60, 80", "woman"]], inputs=[photo, ages, subject])
            with gr.Column():
                video = gr.Video(label="Timelapse", autoplay=True, loop=True, elem_id="aging-video")
                stills = gr.Gallery(label="Ages", columns=4, height=240, format="png", elem_id="aging-stills")
                grid = gr.Image(label="Grid", interactive=False, format="png")
                compare = gr.ImageSlider(label="Before / after (oldest age)", type="pil", elem_id="aging-compare")
                latest = gr.Image(label="Latest frame", interactive=False, height=160)
                info = gr.Markdown(elem_id="aging-info")
        control = gr.State(SessionControl())

    # 3. wiring
    inputs = {"photo": photo, "ages": ages, "subject": subject, "strength": strength, "num_inference_steps": steps,
              "guidance_scale": guidance, "seed": seed, "sampler": sampler, "transition_frames": transition,
              "fps": fps, "captions": captions, "face": face, "padding": padding, "whole_photo": whole,
              "control": control}
    check_inputs_match(aging, list(inputs))
    run.click(on_gpu(aging), inputs=list(inputs.values()), outputs=[video, stills, grid, compare, latest, info],
              api_name="aging", concurrency_id=QUEUE_ID)
    stop.click(lambda c: c.stop(), inputs=control, outputs=None, queue=False, api_name="stop_aging")
    photo.change(face_preview, inputs=photo, outputs=[faces_found, faces_note], api_name="aging_faces")

