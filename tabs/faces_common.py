"""What the two face tabs share: the consent note, the example photo, the face picker and its preview."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from engine import faces
from engine.extras.restore import list_restorers
from engine.faces import identity
from engine.files import images
from widgets.image_upload import readable, upload_path

EXAMPLE_PHOTO = str(Path(__file__).resolve().parent.parent / "presets" / "examples" / "astronaut.jpg")
CONSENT = ("**Consent:** only edit photos of people who agreed to it. Outputs are marked as AI-generated; "
           "don't pass them off as real photos.")
NO_FACE_HINT = " Tick “Whole photo” to process the whole photo instead."
IDENTITY_MISSING = ("Off: its IP-Adapter full-face files are not installed. README, “Faces: Aging timelapse and "
                    "Gender swap”, says how to get them.")


def where(face: faces.Face, width: int) -> str:
    centre = (face.x + face.width / 2) / max(width, 1)
    return "left" if centre < 1 / 3 else "right" if centre > 2 / 3 else "middle"


def faces_list(found: list[faces.Face], width: int, chosen: int) -> str:
    """The faces found as text: number, size and place, the chosen one marked."""
    rows = []
    for number, face in enumerate(found, start=1):
        size = f"{face.width} px" + ("" if faces.usable(face) else f", too small (under {faces.MIN_FACE} px)")
        mark = " ← chosen" if number == chosen + 1 else ""
        rows.append(f"- face {number}: {where(face, width)}, {size}{mark}")
    head = f"**{len(found)} face{'s' if len(found) > 1 else ''} found** (1 = largest):"
    return head + "\n" + "\n".join(rows)


def face_preview(photo, face, found):
    """Numbered boxes on every face found, the chosen one in green, a text list, and the picker's range.

    Takes the raw values (the listeners use preprocess=False, so Gradio never reads a broken file; the upload
    check says why it was refused). Returns (preview, note, face number, faces found) for the Faces found image,
    its note, the Face number field and the tab's gr.State of faces, reused when only the number changed.
    """
    photo, problem = readable(*upload_path(photo))
    if not photo:
        return None, problem or "", gr.Number(maximum=None), None
    try:
        image = images.load_image(photo)
        if found is None or found[0] != photo:
            found = (photo, faces.detect_faces(image))
    except ValueError as exc:
        return None, str(exc), gr.skip(), None
    listed = found[1]
    if not listed:
        return image, "No face was found." + NO_FACE_HINT, gr.Number(maximum=None), found
    in_range = face not in (None, "") and 1 <= int(face) <= len(listed)
    chosen = int(face) - 1 if in_range else 0
    note = faces_list(listed, image.width, chosen)
    if not faces.usable(listed[chosen]):
        note += f"\n\nThe chosen face is under {faces.MIN_FACE} px, too small to work on."
    # a number left over from a photo with more faces goes back to 1, so the run uses the face shown
    number = gr.Number(maximum=len(listed)) if in_range else gr.Number(value=1, maximum=len(listed))
    return faces.draw_faces(image, listed, chosen), note, number, found


def face_widgets(task: str):
    """Face choice, its list of faces found and the whole-photo switch (the padding goes in the settings).

    Also returns the gr.State that keeps the faces found for this session (created here, inside the tab:
    a component made between tabs would show up as a tab of its own).
    """
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=120):
            face = gr.Number(value=1, precision=0, minimum=1, label="Face number (1 = largest)",
                             elem_id=f"{task}-face")
            every = gr.Checkbox(label="All faces", elem_id=f"{task}-all-faces",
                                info="each face in its own region, same settings")
        note = gr.Markdown(elem_id=f"{task}-faces-note", elem_classes=["ds-faces-note"])
    whole = gr.Checkbox(label="Whole photo (no face needed; the background changes too)")
    return face, every, note, whole, gr.State(None)


def identity_slider(manager, task: str) -> gr.Slider:
    """Keep identity: the IP-Adapter full-face scale, offered only where its weights are installed."""
    available = manager.identity_available()
    return gr.Slider(0, 1, value=identity.DEFAULT_SCALE if available else 0, step=0.05, interactive=available,
                     label="Keep identity (0 = off)", elem_id=f"{task}-keep-identity",
                     info="steers the repaint with the face itself (IP-Adapter full-face)" if available
                     else IDENTITY_MISSING)


RESTORER_MISSING = "Put a GFPGAN, RestoreFormer or CodeFormer file in weights/GFPGAN or weights/Codeformer."
FACE_TAB_RESTORE = "cleans up the regenerated face; the rest of the photo stays as it was"


def restore_widgets(manager, task: str, what: str = FACE_TAB_RESTORE) -> tuple[gr.Dropdown, gr.Slider]:
    """Restore faces: a restorer touches only the faces, offered only where one is installed."""
    names = list_restorers(manager.weights_dir)
    choice = gr.Dropdown(["None", *names], value="None", label="Restore faces", interactive=bool(names),
                         elem_id=f"{task}-restore-faces", info=what if names else RESTORER_MISSING)
    visibility = gr.Slider(0, 1, value=1, step=0.05, label="Restoration visibility", interactive=bool(names),
                           elem_id=f"{task}-restore-visibility")
    return choice, visibility


def refresh_restorers(manager, what: str = FACE_TAB_RESTORE) -> tuple[gr.Dropdown, gr.Slider]:
    """The restore widgets as weights/ is now, so a restorer copied in is offered when its tab is opened."""
    names = list_restorers(manager.weights_dir)
    return (gr.Dropdown(choices=["None", *names], interactive=bool(names), info=what if names else RESTORER_MISSING),
            gr.Slider(interactive=bool(names)))


def restorer_choice(value) -> str | None:
    """The dropdown's "None" (or nothing) as the engine's off."""
    return None if not value or value == "None" else value


def padding_slider() -> gr.Slider:
    return gr.Slider(0, 1.5, value=0.5, step=0.05, label="Region around the face (face sizes)")


def wire_faces(photo, face, faces_found, note, found: gr.State, api_name: str) -> None:
    """Redraw Faces found when the photo or the face number changes; the detection is kept in `found`."""
    outputs = [faces_found, note, face, found]
    photo.change(face_preview, inputs=[photo, face, found], outputs=outputs, api_name=api_name, preprocess=False,
                 show_progress="hidden")
    face.change(face_preview, inputs=[photo, face, found], outputs=outputs, api_name=False, preprocess=False,
                show_progress="hidden", trigger_mode="always_last")


def face_index(number) -> int | None:
    """The UI counts faces from 1; the engine from 0."""
    return None if number in (None, "") else int(number) - 1


def with_face_hint(message: str) -> str:
    """Point a "no face" message at the Whole photo switch, once."""
    if "No face" not in message:
        return message
    if "process the whole photo" in message:
        return message.replace("process the whole photo instead", "tick “Whole photo” to process the whole photo")
    return message + NO_FACE_HINT
