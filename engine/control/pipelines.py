"""ControlNet runs: the units' maps and models, and a ControlNet pipeline built over the loaded model's components.

Control modes follow A1111 sd-webui-controlnet:
- Balanced: the residuals as the model gives them, times the weight.
- My prompt is more important: "soft injection", the 13 residuals scaled by weight * 0.825 ** (12 - i), shallow
  blocks least.
- ControlNet is more important: the same soft injection, and the control only on the prompt's half of
  classifier-free guidance (the negative half gets none), so CFG pushes towards the control.
Both are done by a per-request view of the shared model that scales its outputs; nothing is copied.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch

from engine.control.preprocess import inpaint_condition, preprocess
from engine.control.units import BALANCED, CONTROL_FIRST, check_units
from engine.image.request import ImageRequest

SOFT_BASE = 0.825
"""A1111's per-block factor of soft injection."""


@dataclass
class ControlRun:
    """The models, maps and pipeline arguments of one request's active units."""

    models: list
    maps: list
    kwargs: dict


def check_control(req: ImageRequest, task: str) -> ImageRequest:
    """The request with its units checked; combinations that can't run yet are refused in one sentence."""
    if not req.control_units:
        return req
    units = check_units(req.control_units, has_own_image=task != "txt2img")
    if req.hires_scale is not None:
        raise ValueError("Hires. fix can't be combined with ControlNet yet; turn one of them off.")
    if req.fast:
        raise ValueError("Fast (DeepCache) can't be combined with ControlNet; turn Fast off.")
    return replace(req, control_units=units)


def prepare(manager, req: ImageRequest, task: str, task_kwargs: dict) -> ControlRun | None:
    """Load the models and make the maps of the units with a weight above 0; None when there are none.

    Units at weight 0 are left out, so a run with only those is the plain run, pixel for pixel.
    """
    active = [unit for unit in req.control_units if unit.weight > 0]
    if not active:
        return None
    base = manager.base()
    own, mask = task_kwargs.get("image"), task_kwargs.get("mask_image")
    guided = req.guidance_scale > 1
    models, maps = [], []
    for unit in active:
        model = manager.controlnets.get(unit.model, base.unet.config, manager.dtype, manager.device)
        models.append(moded(model, unit.control_mode, guided))
        image = unit.image if unit.image is not None else own
        if unit.module == "inpaint_only":
            maps.append(inpaint_condition(image, mask, width=req.width, height=req.height,
                                          resize_mode=unit.resize_mode))
        else:
            maps.append(preprocess(unit.module, image, width=req.width, height=req.height,
                                   low_threshold=unit.low_threshold, high_threshold=unit.high_threshold,
                                   mask=mask, weights_dir=manager.weights_dir,
                                   resize_mode=unit.resize_mode))
    one = len(active) == 1
    key = "image" if task == "txt2img" else "control_image"
    kwargs = {key: maps[0] if one else maps,
              "controlnet_conditioning_scale": active[0].weight if one else [u.weight for u in active],
              "control_guidance_start": active[0].guidance_start if one else [u.guidance_start for u in active],
              "control_guidance_end": active[0].guidance_end if one else [u.guidance_end for u in active]}
    return ControlRun(models, maps, kwargs)


def control_pipeline(manager, task: str, sampler: str, run: ControlRun, **decode):
    """The task's ControlNet pipeline over the manager's pipeline's components (same UNet, VAE, text encoder)."""
    from diffusers import (
        StableDiffusionControlNetImg2ImgPipeline,
        StableDiffusionControlNetInpaintPipeline,
        StableDiffusionControlNetPipeline,
    )
    from diffusers.models.controlnets import MultiControlNetModel

    cls = {"txt2img": StableDiffusionControlNetPipeline, "img2img": StableDiffusionControlNetImg2ImgPipeline,
           "inpaint": StableDiffusionControlNetInpaintPipeline}[task]
    # decode: Fast decode's TAESD, when asked; the OpenVINO view of the UNet falls back to PyTorch for residuals
    plain = manager.pipeline(task, sampler, **decode)
    controlnet = run.models[0] if len(run.models) == 1 else MultiControlNetModel(run.models)
    parts = {key: value for key, value in plain.components.items() if key != "image_encoder"}
    pipe = cls(**parts, controlnet=controlnet, image_encoder=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def moded(model, mode: str, guided: bool):
    """The model itself for Balanced; else a view sharing its weights that scales its residuals as A1111 does."""
    if mode == BALANCED:
        return model
    view = copy.copy(model)  # a shallow copy: the same submodules and parameters
    view.__class__ = _soft_class(type(model))
    view.cfg_only = mode == CONTROL_FIRST and guided
    return view


_SOFT: dict[type, type] = {}


def _soft_class(cls: type) -> type:
    """A subclass of the model's class whose forward applies A1111's soft injection to what the model gives."""
    if cls not in _SOFT:
        def forward(self, *args, guess_mode: bool = False, return_dict: bool = True, **kwargs):
            down, mid = cls.forward(self, *args, guess_mode=False, return_dict=False, **kwargs)
            residuals = soft_injection([*down, mid], self.cfg_only)
            down, mid = tuple(residuals[:-1]), residuals[-1]
            if return_dict:
                from diffusers.models.controlnets.controlnet import ControlNetOutput

                return ControlNetOutput(down_block_res_samples=down, mid_block_res_sample=mid)
            return down, mid

        _SOFT[cls] = type(f"Soft{cls.__name__}", (cls,), {"forward": forward})
    return _SOFT[cls]


def soft_injection(residuals: list[torch.Tensor], cfg_only: bool = False) -> list[torch.Tensor]:
    """A1111's scaling of the residuals (shallow first, the middle block last: 0.825 ** (n - 1 - i))."""
    count = len(residuals)
    scaled = [r * SOFT_BASE ** (count - 1 - i) for i, r in enumerate(residuals)]
    if cfg_only and scaled[0].shape[0] % 2 == 0:  # [negative, prompt] halves: the negative half gets no control
        half = scaled[0].shape[0] // 2
        scaled = [torch.cat([torch.zeros_like(r[:half]), r[half:]]) for r in scaled]
    return scaled
