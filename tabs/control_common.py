"""The ControlNet accordion of Text to image, Image to image and Inpaint: up to 3 units, A1111-style."""
from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import numpy as np
from PIL import Image

from engine.control.preprocess import DEFAULT_RESIZE_MODE, RESIZE_MODES, preprocess, preprocessors
from engine.control.units import BALANCED, CONTROL_MODES, MAX_UNITS, MAX_WEIGHT, ControlUnit

UNIT_FIELDS = ("enabled", "image", "sketch", "module", "model", "weight", "guidance_start", "guidance_end",
               "control_mode", "resize_mode", "low_threshold", "high_threshold")


def preprocessor_choices(manager) -> list[tuple[str, str]]:
    """Every preprocessor; one that can't run here says why in its label."""
    return [(info.name if info.available else f"{info.name} (unavailable: {info.why_not})", info.name)
            for info in preprocessors(manager.weights_dir)]


def model_choices(manager) -> list[str]:
    return manager.controlnets.folder.names()


def drawn(sketch) -> Image.Image | None:
    """The sketchpad's drawing as an image, or None when nothing was drawn."""
    if not isinstance(sketch, dict) or not sketch.get("layers"):
        return None
    layers = [np.asarray(layer) for layer in sketch["layers"] if layer is not None]
    if not any(layer.ndim == 3 and layer.shape[2] == 4 and layer[..., 3].any() for layer in layers):
        return None
    composite = sketch.get("composite")
    image = composite if isinstance(composite, Image.Image) else Image.fromarray(np.asarray(composite))
    white = Image.new("RGBA", image.size, "white")
    return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")


def units_from_values(values: list[dict] | None) -> tuple[ControlUnit, ...]:
    """The enabled units of the accordion's state, each with its image (or drawing, or None: the tab's image)."""
    units = []
    for value in values or []:
        if not value.get("enabled"):
            continue
        image = value.get("image") or drawn(value.get("sketch"))
        units.append(ControlUnit(module=value.get("module") or "none", model=value.get("model") or "", image=image,
                                 weight=value["weight"], guidance_start=value["guidance_start"],
                                 guidance_end=value["guidance_end"], control_mode=value["control_mode"],
                                 resize_mode=value["resize_mode"], low_threshold=value["low_threshold"],
                                 high_threshold=value["high_threshold"]))
    return tuple(units)


LOADED_FIELDS = ("enabled", "module", "model", "weight", "guidance_start", "guidance_end", "control_mode",
                 "resize_mode", "low_threshold", "high_threshold")
"""The unit settings PNG info carries (A1111's `ControlNet N` fields); the control image is not stored."""


def loaded_widgets(accordion: SimpleNamespace) -> list:
    """The widgets a PNG-info load sets, unit by unit, in LOADED_FIELDS order."""
    return [getattr(unit, name) for unit in accordion.units for name in LOADED_FIELDS]


def loaded_values(manager, units: tuple[ControlUnit, ...]) -> tuple[list, list[str]]:
    """Values for `loaded_widgets` from a PNG's units (the rest switched off), and a note per missing model."""
    found = set(model_choices(manager))
    values, notes = [], []
    for index in range(MAX_UNITS):
        if index >= len(units):
            values += [False] + [gr.skip()] * (len(LOADED_FIELDS) - 1)
            continue
        unit = units[index]
        if unit.model and unit.model not in found:
            notes.append(f"ControlNet {index}'s model {unit.model} is not in weights/ControlNet")
        values += [True, unit.module, unit.model, unit.weight, unit.guidance_start, unit.guidance_end,
                   unit.control_mode, unit.resize_mode, unit.low_threshold, unit.high_threshold]
    return values, notes


def control_accordion(manager, task: str, width, height, own_image=None) -> SimpleNamespace:
    """The accordion; `.state` holds every unit's values, for the tab's run handler (`units_from_values`)."""
    models = model_choices(manager)
    state = gr.State([])
    units = []
    with gr.Accordion("ControlNet", open=False, elem_id=f"{task}-controlnet"):
        with gr.Tabs():
            for index in range(MAX_UNITS):
                with gr.Tab(f"ControlNet Unit {index}", elem_id=f"{task}-controlnet-unit{index}"):
                    units.append(_unit(manager, task, index, models, width, height, own_image))
        gr.Markdown("Model files go in weights/ControlNet (SD 1.5 ControlNets such as "
                    "control_v11p_sd15_canny.safetensors). An Image to image or Inpaint unit without an image uses "
                    "the tab's own image.")
    all_widgets = [getattr(unit, name) for unit in units for name in UNIT_FIELDS]

    def collect(*values):
        size = len(UNIT_FIELDS)
        return [dict(zip(UNIT_FIELDS, values[i:i + size])) for i in range(0, len(values), size)]

    gr.on([w.change for w in all_widgets], collect, inputs=all_widgets, outputs=state, api_name=False,
          queue=False, show_progress="hidden")
    return SimpleNamespace(state=state, units=units)


def _unit(manager, task: str, index: int, models: list[str], width, height, own_image) -> SimpleNamespace:
    prefix = f"{task}-controlnet{index}"
    enabled = gr.Checkbox(label="Enable", elem_id=f"{prefix}-enable")
    with gr.Row():
        image = gr.Image(type="filepath", label="Control image", height=240, elem_id=f"{prefix}-image")
        sketch = gr.Sketchpad(type="pil", label="…or draw a scribble", height=240, elem_id=f"{prefix}-sketch",
                              canvas_size=(512, 512))
    with gr.Row():
        module = gr.Dropdown(preprocessor_choices(manager), value="none", label="Preprocessor",
                             elem_id=f"{prefix}-module")
        model = gr.Dropdown(models, value=models[0] if models else None, label="Model", allow_custom_value=True,
                            elem_id=f"{prefix}-model")
        refresh = gr.Button("Refresh", size="sm", scale=0, min_width=80, elem_id=f"{prefix}-refresh")
    with gr.Row():
        weight = gr.Slider(0, MAX_WEIGHT, value=1, step=0.05, label="Control weight", elem_id=f"{prefix}-weight")
        start = gr.Slider(0, 1, value=0, step=0.01, label="Starting control step")
        end = gr.Slider(0, 1, value=1, step=0.01, label="Ending control step")
    with gr.Row():
        low = gr.Slider(0, 255, value=100, step=1, label="Canny low threshold")
        high = gr.Slider(0, 255, value=200, step=1, label="Canny high threshold")
    control_mode = gr.Radio(list(CONTROL_MODES), value=BALANCED, label="Control mode")
    resize_mode = gr.Radio(list(RESIZE_MODES), value=DEFAULT_RESIZE_MODE, label="Resize mode")
    with gr.Row():
        preview_button = gr.Button("Preview", size="sm", elem_id=f"{prefix}-preview-button")
    preview = gr.Image(label="Preprocessor preview", interactive=False, height=240, elem_id=f"{prefix}-preview")

    def show_preview(image_value, sketch_value, module_value, low_value, high_value, resize, wide, high_side,
                     own=None):
        source = image_value or drawn(sketch_value)
        if isinstance(own, dict):  # the inpaint editor: its photo
            own = own.get("background")
        source = source if source is not None else own
        if source is None:
            raise gr.Error("Upload a control image (or draw one) to preview its map.")
        try:
            return preprocess(module_value or "none", source, width=int(wide), height=int(high_side),
                              low_threshold=int(low_value), high_threshold=int(high_value),
                              weights_dir=manager.weights_dir, resize_mode=resize)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None

    inputs = [image, sketch, module, low, high, resize_mode, width, height] + ([own_image] if own_image else [])
    preview_button.click(show_preview, inputs=inputs, outputs=preview, api_name=f"{task}_control_preview{index}",
                         concurrency_limit=1)
    refresh.click(lambda: gr.Dropdown(choices=model_choices(manager)), outputs=model,
                  api_name=f"{task}_control_models{index}", queue=False)
    return SimpleNamespace(enabled=enabled, image=image, sketch=sketch, module=module, model=model, weight=weight,
                           guidance_start=start, guidance_end=end, control_mode=control_mode,
                           resize_mode=resize_mode, low_threshold=low, high_threshold=high, preview=preview,
                           preview_button=preview_button)
