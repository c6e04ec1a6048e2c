"""Choose where and in which precision the model runs, so the same flags work on CUDA, Apple and plain CPUs."""
from __future__ import annotations

from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
BF16_CPU_FLAGS = {"amx_bf16", "avx512_bf16"}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """Read the CPU feature flags, because bf16 only pays off where the CPU has bf16 instructions."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_supports_bf16(flags: set[str]) -> bool:
    """bf16 on a CPU without AMX/AVX512-BF16 is emulated and slower than fp32."""
    return bool(flags & BF16_CPU_FLAGS)


def pick_device(requested: str | None = None) -> str:
    """Honour --device, else take the fastest accelerator present."""
    if requested and requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError("--device cuda was asked for but no CUDA GPU is available; use --device cpu.")
        if requested == "mps" and not torch.backends.mps.is_available():
            raise ValueError("--device mps was asked for but Apple MPS is not available; use --device cpu.")
        if requested not in ("cpu", "mps") and not requested.startswith("cuda"):
            raise ValueError(f"Unknown device {requested!r}; use auto, cpu, cuda or mps.")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(device: str, requested: str | None = None, flags: set[str] | None = None) -> torch.dtype:
    """fp16 on GPUs, bf16 on CPUs that have bf16 instructions, fp32 elsewhere; --dtype overrides."""
    if requested and requested != "auto":
        try:
            return DTYPES[requested]
        except KeyError:
            raise ValueError(f"Unknown dtype {requested!r}; use auto, float32, bfloat16 or float16.") from None
    if device.startswith("cuda") or device == "mps":
        return torch.float16
    return torch.bfloat16 if cpu_supports_bf16(cpu_flags() if flags is None else flags) else torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """Short names for the UI and PNG info."""
    return {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[dtype]
