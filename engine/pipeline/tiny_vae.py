"""TAESD, the tiny VAE: live previews that look like the image, and Fast decode (A1111's "VAE type for decode: TAESD").

Looked for, offline only, in `weights/taesd` (a diffusers folder laid out as `madebyollin/taesd`) and then in the
Hugging Face cache. Encoding (img2img and inpaint inputs) always keeps the model's own VAE.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from engine.image.preview import VAE_SCALE

TAESD_REPO = "madebyollin/taesd"
LOCAL_FOLDER = "taesd"  # weights/taesd/: config.json and diffusion_pytorch_model.safetensors
DECODER_FIELD = "VAE Decoder"  # A1111's infotext key for its "VAE type for decode" setting
DECODER_VALUE = "TAESD"
PREVIEW_CELLS = 32  # previews decode at most 32 latent cells (256 px) on the longer side, then scale up
MISSING = ("Fast decode needs TAESD, the tiny VAE: put the diffusers folder of madebyollin/taesd (config.json and "
           "diffusion_pytorch_model.safetensors) in weights/taesd, or download it under Downloads "
           "(`python -m engine download taesd`).")


def find_taesd(weights_dir: Path) -> str | None:
    """Where TAESD is: `weights/taesd`, else its snapshot in the Hugging Face cache; None when neither has it."""
    folder = Path(weights_dir) / LOCAL_FOLDER
    if _is_tiny_vae(folder / "config.json") and _has_weights(folder):
        return str(folder.resolve())
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    config = try_to_load_from_cache(TAESD_REPO, "config.json")
    if isinstance(config, str) and _is_tiny_vae(Path(config)) and _has_weights(Path(config).parent):
        return str(Path(config).parent)
    return None


def _is_tiny_vae(config: Path) -> bool:
    try:
        return json.loads(config.read_text()).get("_class_name") == "AutoencoderTiny"
    except (OSError, ValueError, AttributeError):
        return False


def _has_weights(folder: Path) -> bool:
    return any((folder / name).is_file() for name in ("diffusion_pytorch_model.safetensors",
                                                      "diffusion_pytorch_model.bin"))


def load_taesd(location: str, device: str, dtype: torch.dtype):
    """The AutoencoderTiny at `location`, on the model's device and dtype, ready for inference."""
    from diffusers import AutoencoderTiny

    try:
        vae = AutoencoderTiny.from_pretrained(location, local_files_only=True, dtype=dtype)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ValueError(f"TAESD in {location} could not be loaded ({str(exc).splitlines()[0][:200]}); "
                         "download it again or remove the folder.") from exc
    if len(vae.config.decoder_block_out_channels) != 4 or vae.config.latent_channels != 4:
        raise ValueError(f"The tiny VAE in {location} is not TAESD for SD 1.5 (4 latent channels, 8x upscale); "
                         "use madebyollin/taesd.")
    vae = vae.to(device).eval().requires_grad_(False)
    if device == "cpu":
        vae.to(memory_format=torch.channels_last)  # 1.6x faster decodes in fp32 here, the same in bf16
    return vae


class FastDecodeVAE(torch.nn.Module):
    """A pipeline's `vae` that encodes with the model's VAE and decodes with TAESD, so every decode site is fast."""

    def __init__(self, full, tiny):
        super().__init__()
        self.full = full
        self.tiny = tiny

    @property
    def config(self):
        return self.full.config  # pipelines read scaling_factor and block_out_channels from it

    @property
    def dtype(self) -> torch.dtype:
        return self.full.dtype

    @property
    def device(self) -> torch.device:
        return self.full.device

    def encode(self, *args, **kwargs):
        return self.full.encode(*args, **kwargs)

    def decode(self, z: torch.Tensor, return_dict: bool = True, generator=None, **kwargs):
        from diffusers.models.autoencoders.vae import DecoderOutput

        sample = decode_unet_latents(self.tiny, z * self.full.config.scaling_factor).to(z.dtype)
        return DecoderOutput(sample=sample) if return_dict else (sample,)


@torch.no_grad()
def decode_unet_latents(tiny, latents: torch.Tensor) -> torch.Tensor:
    """Images in -1..1 from latents in the UNet's space, which is what TAESD reads (its scaling factor is 1)."""
    return tiny.decode(latents.to(tiny.device, tiny.dtype)).sample.clamp(-1, 1)


def previewer(tiny) -> Callable[[torch.Tensor], Image.Image]:
    """A step preview from the first latent of a batch: the image as TAESD sees it, at the output's size.

    Latents over PREVIEW_CELLS on a side are decoded at that size and the picture scaled up: a 512² preview costs
    about 0.1 s on two CPU cores in bf16 instead of 0.5 s, and looks the same at preview size.
    """
    def preview(latents: torch.Tensor) -> Image.Image:
        latents = latents[:1].detach()
        height, width = latents.shape[-2:]
        scale = PREVIEW_CELLS / max(height, width)
        if scale < 1:
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            latents = torch.nn.functional.interpolate(latents.float(), size=size, mode="bilinear", antialias=True)
        image = decode_unet_latents(tiny, latents)[0].float()
        image = torch.nan_to_num(image, nan=0.0).add(1).mul(127.5).round().clamp(0, 255).byte()
        shown = Image.fromarray(image.permute(1, 2, 0).cpu().numpy(), "RGB")
        full = (width * VAE_SCALE, height * VAE_SCALE)
        return shown if shown.size == full else shown.resize(full, Image.Resampling.BILINEAR)
    return preview
