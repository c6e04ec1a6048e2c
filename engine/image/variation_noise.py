"""Where a run's noise is drawn, the variation seed's noise is blended in: the starting latents of text to image,
the noise image to image adds to the encoded picture."""
from __future__ import annotations

import torch
from diffusers.utils.torch_utils import randn_tensor

from engine.image.variations import slerp


def blend(noise: torch.Tensor, other: torch.Tensor, strength: float) -> torch.Tensor:
    """`noise` slerped toward `other` by `strength`, worked out in float64 and given back in `noise`'s dtype."""
    mixed = slerp(strength, noise.detach().cpu().double().numpy(), other.detach().cpu().double().numpy())
    return torch.from_numpy(mixed).to(noise.device, noise.dtype)


def seed_noise(seed: int, shape, device, dtype) -> torch.Tensor:
    """A seed's first draw, the way the pipelines draw it (CPU generator, so every device gives the same noise)."""
    return randn_tensor(shape, generator=torch.Generator("cpu").manual_seed(seed), device=device, dtype=dtype)


def seeded_noise(pipe, task: str, seed: int, variation_seed: int | None, strength: float, dtype: torch.dtype,
                 height: int, width: int) -> dict:
    """The pipeline call's `generator`, and, for a variation, what makes its noise the blend.

    Text to image gets `latents=`: the seed's noise, drawn from the very generator the call then goes on with (so
    an ancestral sampler's later noise is the plain run's), slerped toward the variation seed's. Image to image
    draws its noise inside the pipeline, so this run's own scheduler blends it where it is added. With strength 0
    or no variation seed the call is the plain one.
    """
    generator = torch.Generator("cpu").manual_seed(seed)
    if variation_seed is None or not strength:
        return {"generator": generator}
    if task == "txt2img":
        factor = pipe.vae_scale_factor
        shape = (1, pipe.unet.config.in_channels, height // factor, width // factor)
        device = pipe._execution_device
        noise = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        return {"generator": generator,
                "latents": blend(noise, seed_noise(variation_seed, shape, device, dtype), strength)}
    if task == "img2img":
        vary_added_noise(pipe.scheduler, variation_seed, strength)
        return {"generator": generator}
    raise ValueError("Variation seed and strength work in Text to image and Image to image only; set the variation "
                     "strength to 0.")


def vary_added_noise(scheduler, variation_seed: int, strength: float) -> None:
    """Wrap this request's own scheduler so the noise image to image adds is slerped toward the variation seed's."""
    add_noise = scheduler.add_noise

    def varied(original_samples, noise, timesteps):
        other = seed_noise(variation_seed, noise.shape, noise.device, noise.dtype)
        return add_noise(original_samples, blend(noise, other, strength), timesteps)

    scheduler.add_noise = varied
