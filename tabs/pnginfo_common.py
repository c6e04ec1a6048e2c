"""PNG info in the image tabs: drop a picture, and its A1111 parameters fill that tab's own widgets."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from engine.files import pnginfo
from engine.image.generate import request_from_parameters
from tabs.common import check_uploads
from tabs.control_common import loaded_values, loaded_widgets
from tabs.session import user_error, user_errors
from widgets.image_upload import readable, upload_path

WHOLE_PICTURE, ONLY_MASKED = "Whole picture", "Only masked"  # A1111's "Inpaint area" choices
INPAINT_KEYS = ("Mask blur", "Inpaint area", "Masked area padding", "Masked content", "Mask mode")
VARIATION_KEYS = ("Variation seed", "Variation seed strength")
AS_HERE = {"Masked content": "original", "Mask mode": "Inpaint masked"}  # A1111 values that inpaint here works as
LOADABLE = ("prompt", "negative_prompt", "num_inference_steps", "guidance_scale", "width", "height", "size", "seed",
            "sampler", "strength", "mask_blur", "inpaint_area", "padding", "hires", "hires_scale", "hires_upscaler",
            "hires_steps", "hires_strength", "styles", "variation_seed", "variation_strength", "fast_decode")
"""The widget names a tab may hand to `wire_png_info`; "size" is the longer side of Image to image and Inpaint."""


def png_info_panel(task: str) -> SimpleNamespace:
    """The accordion: a drop zone (#<task>-png-info), the text found, and a note on what was not used."""
    with gr.Accordion("PNG info: load parameters from an image", open=False, elem_id=f"{task}-png-info-panel"):
        png = gr.Image(type="filepath", label="Drop a PNG", height=200, image_mode=None, elem_id=f"{task}-png-info")
        text = gr.Textbox(label="Parameters found", lines=4, interactive=False)
        note = gr.Markdown(elem_id=f"{task}-png-info-note")
    return SimpleNamespace(png=png, text=text, note=note)


def dropped_text(png) -> str:
    """The raw upload's parameters text (preprocess=False: the engine reads it), or the user's one sentence."""
    path, problem = readable(*upload_path(png))
    if problem:
        raise user_error(problem)
    if not path:
        raise user_error("Drop a PNG made by Diffusion Studio or A1111 to read its parameters.")
    with user_errors():
        text = pnginfo.read_parameters(path)
    if not text:
        raise user_error("This image carries no generation parameters.")
    return text


def widget_values(text: str, names: list[str]) -> tuple[list, list[str], tuple]:
    """The values for the named widgets (gr.skip() where the text says nothing), the fields not used, the units."""
    req, skipped = request_from_parameters(text)
    fields = pnginfo.parse_parameters(text)
    given = {key for key in fields if key not in skipped}
    hires = req.hires_scale is not None
    inpainted = bool({"Mask blur", "Inpaint area"} & given)
    values = {"prompt": req.prompt, "negative_prompt": req.negative_prompt,
              "num_inference_steps": req.num_inference_steps, "guidance_scale": req.guidance_scale,
              "width": req.width, "height": req.height, "seed": req.seed, "sampler": req.sampler,
              "size": max(req.width, req.height) if "Size" in given else gr.skip(),
              "strength": req.strength if "Denoising strength" in given else gr.skip(),
              "mask_blur": req.mask_blur if "Mask blur" in given else gr.skip(),
              "inpaint_area": (ONLY_MASKED if req.only_masked else WHOLE_PICTURE) if inpainted else gr.skip(),
              "padding": req.only_masked_padding if "Masked area padding" in given else gr.skip(),
              "hires": hires, "styles": [],  # the loaded prompt already holds its styles
              "variation_seed": req.variation_seed, "variation_strength": req.variation_strength,
              "fast_decode": req.fast_decode}
    for name in ("hires_scale", "hires_upscaler", "hires_steps", "hires_strength"):
        values[name] = getattr(req, name) if hires else gr.skip()
    return [values[name] for name in names], skipped + unused_fields(fields, names, skipped), req.control_units


def unused_fields(fields: dict[str, str], names: list[str], skipped: list[str]) -> list[str]:
    """The fields a tab has no widget for (Hires. fix in Image to image, say), in the text's order, for the note."""
    hires = bool({"Hires upscale", "Hires resize"} & set(fields))

    def unused(key: str) -> str | None:
        if key in skipped:
            return None  # named already, as unreadable
        if (key.startswith("Hires ") and "hires" not in names) or (key in VARIATION_KEYS and "variation_seed" not in names):
            return key
        if key == "Denoising strength" and "strength" not in names and not hires:
            return key
        if key in INPAINT_KEYS and "mask_blur" not in names:
            return key
        if key in AS_HERE and fields[key] != AS_HERE[key]:
            return f"{key} {fields[key]} ({AS_HERE[key]} used)"
        return None

    return [label for label in map(unused, fields) if label]


def load_note(text: str, not_used: list[str], missing: list[str], units: tuple, own_image: bool) -> str:
    """One line under the drop zone: what was read, what was not used, and the ControlNet models to fetch."""
    note = f"Read {len(text.splitlines())} lines." + (f" Not used: {', '.join(not_used)}." if not_used else "")
    note += "".join(f" {line}; add it there or pick another." for line in missing)
    if units:
        note += (" ControlNet units set: add their control images, or leave them empty to use this tab's image."
                 if own_image else " ControlNet units set: add their control images.")
    return note


def wire_png_info(manager, panel: SimpleNamespace, widgets: dict, controlnet: SimpleNamespace, api_name: str,
                  own_image: bool = False) -> None:
    """A drop on `panel` fills `widgets` (names from LOADABLE, in order) and the ControlNet units."""
    names = list(widgets)
    bad = set(names) - set(LOADABLE)
    if bad:
        raise ValueError(f"PNG info cannot fill {', '.join(sorted(bad))}; the widgets it fills are {LOADABLE}.")

    def png_info(png):
        text = dropped_text(png)
        values, not_used, units = widget_values(text, names)
        unit_values, missing = loaded_values(manager, units)
        return (text, load_note(text, not_used, missing, units, own_image), *values, *unit_values)

    check_uploads(panel.png, say=False)  # png_info says why
    panel.png.upload(png_info, inputs=panel.png,
                     outputs=[panel.text, panel.note, *widgets.values(), *loaded_widgets(controlnet)],
                     api_name=api_name, preprocess=False, show_progress="hidden")
