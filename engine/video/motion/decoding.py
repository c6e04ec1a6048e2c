"""How a clip's latents become pictures: the model's VAE or TAESD (Fast decode) in memory-bounded chunks, the live
preview while it denoises, and the PNG info each frame carries."""
from __future__ import annotations

from typing import Callable

import torch
from PIL import Image

from engine.files import pnginfo
from engine.image.preview import latents_to_preview
from engine.pipeline.tiny_vae import DECODER_FIELD, DECODER_VALUE, FastDecodeVAE

# frames decoded at once, so memory stays bounded however long the clip; TAESD (64 channels a block, the VAE's
# go to 512) holds far smaller activations a frame, so it takes more frames at a time
VAE_CHUNK = {"cpu": 2, "other": 8}
TAESD_CHUNK = {"cpu": 8, "other": 16}


def decoding_vae(vae, tiny=None):
    """The pipeline's `vae`: the model's own, or with TAESD given, one that decodes with TAESD (encodes stay)."""
    return vae if tiny is None else FastDecodeVAE(vae, tiny)


def chunk_size(device: str, fast_decode: bool) -> int:
    """How many frames go through the decoder at once, so memory stays bounded however long the clip."""
    sizes = TAESD_CHUNK if fast_decode else VAE_CHUNK
    return sizes["cpu" if device == "cpu" else "other"]


def clip_preview(preview_maker: Callable[[torch.Tensor], Image.Image] | None) -> Callable[[torch.Tensor], Image.Image]:
    """The step preview of a clip's latents (batch, 4, frames, h, w): the middle frame as TAESD decodes it when
    `preview_maker` is given (manager.step_preview()), else frame 0's cheap latent approximation."""
    def preview(latents: torch.Tensor) -> Image.Image:
        if preview_maker is None:
            return latents_to_preview(latents[0, :, 0].detach().float().cpu().numpy())
        return preview_maker(latents[:1, :, latents.shape[2] // 2])
    return preview


def frame_parameters(parameters: dict, index: int) -> str:
    """A frame's PNG info in A1111's layout: the clip's recipe, which frame this is, and `VAE Decoder: TAESD` when
    Fast decode made it."""
    settings = {"Steps": parameters["num_inference_steps"], "Sampler": parameters["sampler"],
                "CFG scale": f"{parameters['guidance_scale']:g}", "Seed": parameters["seed"],
                "Size": f"{parameters['width']}x{parameters['height']}", "Model": parameters.get("model"),
                "Motion adapter": parameters.get("motion_adapter"), "Frame": f"{index + 1} of {parameters['num_frames']}"}
    if parameters.get("fast_decode"):
        settings[DECODER_FIELD] = DECODER_VALUE
    return pnginfo.format_parameters(parameters["prompt"], parameters["negative_prompt"], settings)
