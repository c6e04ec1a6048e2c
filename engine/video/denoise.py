"""Record the model's guess of the final image at every denoising step, for a "denoising video"."""
from __future__ import annotations

import torch


def predicted_original(scheduler, model_output: torch.Tensor, sample: torch.Tensor, timestep) -> torch.Tensor:
    """x0 from an epsilon prediction, in whichever noise space the scheduler keeps its sample."""
    sigmas = getattr(scheduler, "sigmas", None)
    index = getattr(scheduler, "step_index", None)
    if sigmas is not None and index is not None and index < len(sigmas):
        sigma = sigmas[index].to(sample.device, torch.float32)
        if float(scheduler.init_noise_sigma) > 1.0:  # k-diffusion space: x = x0 + sigma * eps
            return sample.float() - sigma * model_output.float()
        alpha = 1.0 / torch.sqrt(sigma**2 + 1.0)  # variance-preserving space: x = a * x0 + s * eps
        return (sample.float() - sigma * alpha * model_output.float()) / alpha
    alpha_bar = scheduler.alphas_cumprod[int(timestep)].to(sample.device, torch.float32)
    return (sample.float() - torch.sqrt(1 - alpha_bar) * model_output.float()) / torch.sqrt(alpha_bar)


def record_predictions(scheduler) -> list[torch.Tensor]:
    """Wrap this request's own scheduler so each step also stores its x0 prediction (first batch item)."""
    frames: list[torch.Tensor] = []
    step = scheduler.step

    def recording_step(model_output, timestep, sample, *args, **kwargs):
        frames.append(predicted_original(scheduler, model_output, sample, timestep)[:1].detach().cpu())
        return step(model_output, timestep, sample, *args, **kwargs)

    scheduler.step = recording_step
    return frames


@torch.inference_mode()
def decode_frames(vae, latents: list[torch.Tensor], image_processor, batch: int = 4) -> list:
    """Decode recorded latents to PIL images a few at a time, to bound memory."""
    images = []
    for start in range(0, len(latents), batch):
        chunk = torch.cat(latents[start:start + batch]).to(vae.device, vae.dtype)
        decoded = vae.decode(chunk / vae.config.scaling_factor).sample
        images.extend(image_processor.postprocess(decoded, output_type="pil"))
    return images


def write_denoise_video(frames: list, path, fps: float = 8, parameters: str = ""):
    """The step-by-step predictions as an MP4, holding the final frame a moment so it can be seen."""
    from engine import video

    hold = [frames[-1]] * max(1, int(fps // 2))
    return video.write_mp4([*frames, *hold], path, fps, metadata={"title": "Diffusion Studio denoising video",
                                                                   "parameters": parameters})
