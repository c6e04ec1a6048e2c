"""Gender swap: one photo in, the same person as the other gender out, in a few variants."""
from __future__ import annotations

import gradio as gr

from engine.faces.gender import GenderRequest, gender_swap
from engine.faces.portrait import FaceStep
from engine.jobs.runner import run_job
from engine.pipeline.schedulers import sampler_names
from engine.text.presets import gender_preset
from tabs.common import (
    check_inputs_match,
    check_uploads,
    fast_decode_toggle,
    local_path,
    on_gpu,
    result_gallery,
    save_results,
)
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

TASK = "gender_swap"
DIRECTIONS = ["to woman", "to man"]


def describe(update):
    """Progress from the first denoising step; a finished variant also updates the preview."""
    if isinstance(update, FaceStep):
        where = f", {update.face_label} ({update.face}/{update.faces})" if update.faces > 1 else ""
        return update.fraction, f"Variant {update.index} of {update.total}{where}, {step_of(update)}", None
    done, total, image = update
    return done / total, f"Variant {done} of {total} done", image


def build(manager) -> None:
    """The tab's widgets and events."""
    defaults = gender_preset().defaults

    # 1. handlers
    def swap(photo, direction, strength, variants, num_inference_steps, guidance_scale, seed, sampler, face,
             all_faces, padding, whole_photo, keep_identity, control, fast_decode=False, restore_faces="None", visibility=1.0,
             progress=gr.Progress()):
        if not photo:
            raise user_error("Upload a photo to start.")
        try:
            req = GenderRequest(direction=direction, strength=strength, variants=variants,
                                num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, seed=seed,
                                sampler=sampler, face_index=face_index(face), all_faces=bool(all_faces),
                                padding=padding, whole_photo=whole_photo,
                                keep_identity=float(keep_identity or 0), fast_decode=bool(fast_decode),
                                restore_faces=restorer_choice(restore_faces), visibility=float(visibility))
            job = lambda on_update, ctl: run_job(gender_swap, manager, req, photo,  # noqa: E731
                                                     lambda *u: on_update(u), ctl, on_step=on_update)
            for preview, result in stream(job, control, progress, manager.gate, describe=describe):
                if result is None:
                    yield gr.skip(), gr.skip(), preview, gr.skip()
                else:
                    yield outputs(result)
        except (gr.Error, ValueError) as exc:
            raise user_error(with_face_hint(str(getattr(exc, "message", exc)))) from exc

    def outputs(result):
        paths = save_results(result.variants, TASK)
        info = [*result.notes, "Seeds: " + ", ".join(str(v.seed) for v in result.variants)]
        if result.identity_note:  # measured on the edited face; "no face found in the result" where so
            info.append(result.identity_note)
        slider = (result.original, paths[0]) if paths else None
        return paths, slider, paths[-1] if paths else None, "\n\n".join(info)

    def compare(photo, gallery, evt: gr.SelectData):
        return (photo, local_path(gallery[evt.index])) if photo and gallery else None

    # 2. layout: direction and the run button first; the rarely changed settings in an accordion
    with gr.Tab("Gender swap", id=TASK) as tab:
        with gr.Row(equal_height=True):
            with gr.Column(scale=4):
                gr.Markdown(CONSENT, elem_classes=["ds-consent"])
                with gr.Row():
                    direction = gr.Radio(DIRECTIONS, value=DIRECTIONS[0], label="Direction", elem_id="swap-direction")
                    variants = gr.Slider(1, 16, value=defaults["variants"], step=1, label="Variants (seeds)")
            with gr.Column(scale=1, min_width=160):
                run, stop = run_buttons("swap", "Swap")
        with gr.Row():
            with gr.Column():
                photo = ImageUpload(type="filepath", label="Photo", image_mode=None, height=240, elem_id="swap-photo")
                faces_found = gr.Image(label="Faces found", interactive=False, height=340, format="png",
                                       elem_id="swap-faces")
                face, all_faces, faces_note, whole, found = face_widgets("swap")
                keep_identity = identity_slider(manager, "swap")
                fast_decode = fast_decode_toggle(manager, "swap")
                restore_faces, visibility = restore_widgets(manager, "swap")
                with gr.Accordion("More settings", open=False, elem_id="swap-settings"):
                    with gr.Row():
                        strength = gr.Slider(0.05, 1, value=defaults["strength"], step=0.01, label="Strength")
                        steps = gr.Slider(1, 150, value=defaults["num_inference_steps"], step=1, label="Steps")
                        guidance = gr.Slider(1, 30, value=defaults["guidance_scale"], step=0.5,
                                             label="Guidance scale")
                    with gr.Row():
                        seed = gr.Number(value=-1, precision=0, label="Seed (-1 = random; variant n uses seed + n)")
                        sampler = gr.Dropdown(sampler_names(), value=defaults["sampler"], label="Sampler")
                    padding = padding_slider()
                gr.Examples([[EXAMPLE_PHOTO, DIRECTIONS[1]]], inputs=[photo, direction])
            with gr.Column():
                with gr.Row(equal_height=False):
                    latest = gr.Image(label="Latest variant", interactive=False, height=200, min_width=200, scale=1,
                                      elem_classes=["ds-preview"], elem_id="swap-preview")
                    with gr.Column(scale=2):
                        bar = progress_bar("swap")
                        info = gr.Markdown(elem_id="swap-info")
                gallery = result_gallery("Variants (click one to compare)", columns=2, height=360,
                                         elem_id="swap-gallery")
                slider = gr.ImageSlider(label="Before / after", type="pil", height=360, interactive=False,
                                        elem_id="swap-compare")
        control = gr.State(SessionControl())

    # 3. wiring
    tab.select(lambda: refresh_restorers(manager), outputs=[restore_faces, visibility], api_name=False,
               queue=False, show_progress="hidden")
    inputs = {"photo": photo, "direction": direction, "strength": strength, "variants": variants,
              "num_inference_steps": steps, "guidance_scale": guidance, "seed": seed, "sampler": sampler,
              "face": face, "all_faces": all_faces, "padding": padding, "whole_photo": whole,
              "keep_identity": keep_identity, "control": control, "fast_decode": fast_decode,
              "restore_faces": restore_faces, "visibility": visibility}
    check_inputs_match(swap, list(inputs))
    wire_run(run.click, on_gpu(swap, "gender_swap"), inputs=list(inputs.values()), outputs=[gallery, slider, latest, info],
             api_name="gender_swap", control=control, stop=stop, bar=bar)
    wire_stop(stop, control, "stop_gender_swap")
    check_uploads(photo)
    wire_faces(photo, face, faces_found, faces_note, found, api_name="gender_swap_faces")
    gallery.select(compare, inputs=[photo, gallery], outputs=slider, api_name=False)
