"""What the two face tabs share: the consent note, the example photo, face preview, and the face widgets."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from engine import faces, images

EXAMPLE_PHOTO = str(Path(__file__).resolve().parent.parent / "presets" / "examples" / "astronaut.jpg")
CONSENT = ("**Consent:** only edit photos of people who agreed to it. Outputs are marked as AI-generated; "
           "don't pass them off as real photos.")
NO_FACE_HINT = " Tick “Whole photo” to process the whole photo instead."


def face_preview(photo):
    """Numbered boxes on every face found, so the user can pick another one."""
    if not photo:
        return None, ""
    try:
        image = images.load_image(photo)
    except ValueError as exc:
        return None, str(exc)
    found = faces.detect_faces(image)
    if not found:
        return image, "No face was found." + NO_FACE_HINT
    usable = "" if faces.usable(found[0]) else f" The largest face is under {faces.MIN_FACE} px, too small to work on."
    return faces.draw_faces(image, found, 0), f"{len(found)} face{'s' if len(found) > 1 else ''} found.{usable}"


def face_widgets():
    """Face choice, region padding and the whole-photo switch."""
    with gr.Row():
        face = gr.Number(value=1, precision=0, minimum=1, label="Face number (1 = largest)")
        padding = gr.Slider(0, 1.5, value=0.5, step=0.05, label="Region around the face (face sizes)")
    whole = gr.Checkbox(label="Whole photo (no face needed; the background changes too)")
    return face, padding, whole


def face_index(number) -> int | None:
    """The UI counts faces from 1; the engine from 0."""
    return None if number in (None, "") else int(number) - 1


def with_face_hint(message: str) -> str:
    return message + NO_FACE_HINT if "No face" in message else message
