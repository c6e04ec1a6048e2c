"""Gender swap: one photo in, the same person as the other gender out, in a few variants."""
from __future__ import annotations

import gradio as gr

from engine.gender import GenderRequest, gender_swap
from engine.presets import gender_preset
from engine.schedulers import sampler_names
from tabs.common import QUEUE_ID, SessionControl, check_inputs_match, local_path, on_gpu, save_results, stream
from tabs.faces_common import CONSENT, EXAMPLE_PHOTO, face_index, face_preview, face_widgets, with_face_hint

TASK = "gender_swap"
DIRECTIONS = ["to woman", "to man"]


def describe(update):
    done, total, image = update
    return done / total, f"Variant {done} of {total}", image


def build(manager) -> None:
    """The tab's widgets and events."""
    defaults = gender_preset().defaults

    # 1. handlers
    def swap(photo, direction, strength, variants, num_inference_steps, guidance_scale, seed, sampler, face,
             padding, whole_photo, control, progress=gr.Progress()):
        if not photo:
            raise gr.Error("Upload a photo to start.")
        try:
            req = GenderRequest(direction=direction, strength=strength, variants=variants,
                                num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, seed=seed,
                                sampler=sampler, face_index=face_index(face), padding=padding,
                                whole_photo=whole_photo)
            job = lambda on_step, ctl: gender_swap(manager, req, photo,  # noqa: E731
                                                   lambda *u: on_step(u), ctl)
            for preview, result in stream(job, control, progress, manager.gate, describe=describe):
                if result is None:
                    yield gr.skip(), gr.skip(), preview, gr.skip()
                else:
                    yield outputs(result)
        except (gr.Error, ValueError) as exc:
            raise gr.Error(with_face_hint(str(getattr(exc, "message", exc)))) from exc

    def outputs(result):
        paths = save_results(result.variants, TASK)
        info = [*result.notes, "Seeds: " + ", ".join(str(v.seed) for v in result.variants)]
        if result.variants and result.variants[0].identity is not None:
            info.append("Identity distance to the photo (≤ 0.6 reads as the same person): " +
                        ", ".join(f"{v.identity:.2f}" for v in result.variants))
        slider = (result.original, paths[0]) if paths else None
        return paths, slider, paths[-1] if paths else None, "\n\n".join(info)

    def compare(photo, gallery, evt: gr.SelectData):
        return (photo, local_path(gallery[evt.index])) if photo and gallery else None

    # 2. layout
    with gr.Tab("Gender swap", id=TASK):
        gr.Markdown(CONSENT, elem_classes=["ds-consent"])
        with gr.Row():
            with gr.Column():
                photo = gr.Image(type="filepath", label="Photo", image_mode=None, height=320, elem_id="swap-photo")
                faces_found = gr.Image(label="Faces found", interactive=False, height=200)
                faces_note = gr.Markdown()
                direction = gr.Radio(DIRECTIONS, value=DIRECTIONS[0], label="Direction", elem_id="swap-direction")
                with gr.Row():
                    strength = gr.Slider(0.05, 1, value=defaults["strength"], step=0.01, label="Strength")
                    variants = gr.Slider(1, 16, value=defaults["variants"], step=1, label="Variants (seeds)")
                with gr.Row():
                    steps = gr.Slider(1, 150, value=defaults["num_inference_steps"], step=1, label="Steps")
                    guidance = gr.Slider(1, 30, value=defaults["guidance_scale"], step=0.5, label="Guidance scale")
                with gr.Row():
                    seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random; variant n uses seed + n)")
                    sampler = gr.Dropdown(sampler_names(), value=defaults["sampler"], label="Sampler")
                face, padding, whole = face_widgets()
                with gr.Row():
                    run = gr.Button("Swap", variant="primary", elem_id="swap-run")
                    stop = gr.Button("Stop", variant="stop", elem_id="swap-stop")
                gr.Examples([[EXAMPLE_PHOTO, DIRECTIONS[1]]], inputs=[photo, direction])
            with gr.Column():
                gallery = gr.Gallery(label="Variants (click one to compare)", columns=2, height=320, format="png",
                                     elem_id="swap-gallery")
                slider = gr.ImageSlider(label="Before / after", type="pil", elem_id="swap-compare")
                latest = gr.Image(label="Latest variant", interactive=False, height=160)
                info = gr.Markdown(elem_id="swap-info")
        control = gr.State(SessionControl())

    # 3. wiring
    inputs = {"photo": photo, "direction": direction, "strength": strength, "variants": variants,
              "num_inference_steps": steps, "guidance_scale": guidance, "seed": seed, "sampler": sampler,
              "face": face, "padding": padding, "whole_photo": whole, "control": control}
    check_inputs_match(swap, list(inputs))
    run.click(on_gpu(swap), inputs=list(inputs.values()), outputs=[gallery, slider, latest, info], api_name="gender_swap",
              concurrency_id=QUEUE_ID)
    stop.click(lambda c: c.stop(), inputs=control, outputs=None, queue=False, api_name="stop_gender_swap")
    photo.change(face_preview, inputs=photo, outputs=[faces_found, faces_note], api_name="gender_swap_faces")
    gallery.select(compare, inputs=[photo, gallery], outputs=slider, api_name=False)
