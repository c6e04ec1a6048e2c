"""FLOPs per UNet step and per VAE decode, counted on the meta device so no weights are needed."""

from __future__ import annotations

import copy
import time

import torch
from torch.utils.flop_counter import FlopCounterMode


def _count(module: torch.nn.Module, *inputs, **kwargs) -> int:
    """Counts on a meta copy so the figure is free of the machine and costs no memory."""
    meta = copy.deepcopy(module).to("meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta(*inputs, **kwargs)
    return int(counter.get_total_flops())


def unet_step_flops(unet, size: int, batch: int = 2, tokens: int = 77) -> int:
    """One denoising step at `size` pixels; batch 2 is CFG's cond + uncond pass."""
    latent = size // 8
    dtype = next(unet.parameters()).dtype
    sample = torch.empty(batch, unet.config.in_channels, latent, latent, device="meta", dtype=dtype)
    context = torch.empty(batch, tokens, unet.config.cross_attention_dim, device="meta", dtype=dtype)
    return _count(unet, sample, torch.tensor([10] * batch, device="meta"), encoder_hidden_states=context)


def vae_decode_flops(vae, size: int, batch: int = 1) -> int:
    """One decode of a `size`-pixel image (AutoencoderKL or AutoencoderTiny)."""
    latent = size // 8
    channels = vae.config.latent_channels
    dtype = next(vae.parameters()).dtype  # the bench's VAE runs in bf16 where the CPU has it
    sample = torch.empty(batch, channels, latent, latent, device="meta", dtype=dtype)
    meta = copy.deepcopy(vae).to("meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta.decode(sample)
    return int(counter.get_total_flops())


def int8_matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """Best TOP/s of an int8 n x n matmul (torch._int_mm): the ceiling for the int8 UNet."""
    a = torch.randint(-128, 127, (n, n), dtype=torch.int8)
    b = torch.randint(-128, 127, (n, n), dtype=torch.int8)
    torch._int_mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch._int_mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e12


def efficiency(flops: float, peak_tflops: float, seconds: float) -> float:
    """FLOP floor over measured time: 1.0 means the path ran at the matmul peak."""
    return flops / (peak_tflops * 1e12) / seconds


def add_efficiency(out: dict, vae, size: int, steps: int) -> None:
    """Adds the int8 peak, VAE FLOPs and the default path's efficiency (FLOP floor at the bf16 peak / time)."""
    out["matmul_tflops"]["int8"] = int8_matmul_peak()
    out["vae_decode_flops"] = vae_decode_flops(vae, size)
    total = steps * out["unet"]["flops_per_step"] + out["vae_decode_flops"]
    out["flops_per_image"] = total
    out["efficiency"] = efficiency(total, out["matmul_tflops"]["bf16"], out["ours"]["seconds"])
