"""A1111's parameters text for an image request, so the PNG can be read back by A1111 tools and by this app."""
from __future__ import annotations

from engine.control.units import unit_field
from engine.files import pnginfo
from engine.image.request import ImageRequest
from engine.image.variations import variation_fields
from engine.pipeline.schedulers import a1111_fields
from engine.pipeline.tiny_vae import DECODER_FIELD, DECODER_VALUE


def replica_field(manager) -> dict:
    """PNG info's `Replica` on a Ray Serve replica (engine.backends.ray), so an image says which worker made it."""
    replica = getattr(manager, "replica", None)
    return {"Replica": replica} if replica else {}


def parameters_text(manager, task: str, req: ImageRequest, seed: int, variation_seed: int | None = None) -> str:
    """A1111's parameters text, so the PNG can be read back by A1111 tools and by this app."""
    settings: dict[str, object] = {"Steps": req.num_inference_steps, **a1111_fields(req.sampler),
                                   "CFG scale": _short(req.guidance_scale), "Seed": seed,
                                   "Size": f"{req.width}x{req.height}", "Model": manager.model_label}
    settings.update(variation_fields(variation_seed, req.variation_strength))  # after Model, as A1111 writes them
    if task != "txt2img":
        settings["Denoising strength"] = _short(req.strength)
    elif req.hires_scale is not None:  # A1111's Hires. fix fields; Size stays the first pass's
        settings["Denoising strength"] = _short(req.hires_strength)
        settings["Hires upscale"] = _short(req.hires_scale)
        settings["Hires steps"] = req.hires_steps or None
        settings["Hires upscaler"] = req.hires_upscaler
    if task == "inpaint":
        settings["Mask blur"] = req.mask_blur
        if req.only_masked:
            settings["Inpaint area"] = "Only masked"
            settings["Masked area padding"] = req.only_masked_padding
    if req.fast:
        settings["Fast"] = "DeepCache"
    settings.update(control_fields(manager, req))
    settings.update(decoder_field(req))
    backend_used = getattr(manager, "backend_used", None)
    settings["Backend"] = {"openvino": "OpenVINO", "torch": "PyTorch"}.get(
        backend_used() if callable(backend_used) else "torch", "PyTorch")
    precision_used = getattr(manager, "precision_used", None)
    if callable(precision_used) and precision_used() == "int8":
        settings["Precision"] = "int8"
    network_fields = getattr(manager, "network_fields", None)
    if callable(network_fields):
        settings.update(network_fields(req.prompt, req.negative_prompt))  # Lora hashes, TI hashes
    settings.update(replica_field(manager))
    settings["Version"] = "Diffusion Studio"
    return pnginfo.format_parameters(req.prompt, req.negative_prompt, settings)


def decoder_field(req) -> dict:
    """A1111's `VAE Decoder: TAESD` when the image was decoded by the tiny VAE (Fast decode)."""
    return {DECODER_FIELD: DECODER_VALUE} if getattr(req, "fast_decode", False) else {}


def _short(value: float) -> str:
    """7.0 -> '7', 0.75 -> '0.75', as A1111 writes them."""
    return f"{value:g}"


def control_fields(manager, req: ImageRequest) -> dict:
    """sd-webui-controlnet's `ControlNet 0`, `ControlNet 1`... fields, one per unit."""
    return {f"ControlNet {i}": unit_field(unit, manager.controlnets.folder.label(unit.model), req.width, req.height)
            for i, unit in enumerate(getattr(req, "control_units", ()) or ())}


def restoration_fields(req) -> dict:
    """A1111's `Face restoration: CodeFormer` (and our visibility) when faces were restored after generation."""
    name = getattr(req, "restore_faces", None)
    if not name:
        return {}
    visibility = getattr(req, "visibility", 1.0)
    return {"Face restoration": name, "Face restoration visibility": None if visibility == 1 else f"{visibility:g}"}
