"""Where the denoising loop runs: PyTorch (every device) or OpenVINO (Intel/AMD x86 CPUs), and how `auto` picks.

`--backend auto` (the default) picks OpenVINO on an x86 CPU where the `openvino` package is installed and the
model is full-size, and PyTorch everywhere else: on CUDA and Apple MPS, on ARM CPUs, without the package, and
for small models such as the test model (`tiny`), whose steps take milliseconds, so converting the UNet (seconds)
would cost more than it could save. On this project's 2-core Xeon OpenVINO ran the full-size SD 1.5 UNet
1.45-1.65x faster than PyTorch bf16 (BENCHMARKS.md).

Whatever is chosen, requests that change the UNet run on PyTorch: the Fast toggle's feature reuse, the Keep
identity adapter, LoRAs, and image sizes whose OpenVINO model is not ready yet (engine.backends.openvino).
"""
from __future__ import annotations

import importlib
import logging
import platform
from dataclasses import dataclass

BACKENDS = ("auto", "torch", "openvino")
X86_MACHINES = {"x86_64", "amd64", "i686", "i386", "x86"}
SMALL_MODEL_PARAMETERS = 20_000_000  # below this auto stays on torch (the tiny model has ~0.5M; SD 1.5 860M)
INSTALL_HINT = "pip install 'openvino==2026.4.*'"

log = logging.getLogger("engine.backends")
_said: set[str] = set()


@dataclass(frozen=True)
class Choice:
    """The back end a model runs on and the sentence saying why."""

    name: str  # "torch" or "openvino"
    reason: str


def say_once(message: str) -> None:
    """Log a fallback's reason the first time it happens, not at every request."""
    if message not in _said:
        _said.add(message)
        log.warning(message)


def check_backend(requested: str | None) -> str:
    """The flag's value, lower-cased; ValueError for an unknown one."""
    name = (requested or "auto").strip().lower()
    if name not in BACKENDS:
        raise ValueError(f"Unknown back end {requested!r}; use auto, torch or openvino.")
    return name


def openvino_installed() -> bool:
    """Whether `import openvino` works here (it is an optional dependency)."""
    try:
        importlib.import_module("openvino")
    except ImportError:
        return False
    return True


def is_x86(machine: str | None = None) -> bool:
    return (machine if machine is not None else platform.machine()).lower() in X86_MACHINES


def choose_backend(requested: str | None, device: str, unet_parameters: int, *,
                   installed: bool | None = None, machine: str | None = None) -> Choice:
    """Pick the back end for a model of `unet_parameters` on `device`.

    Args:
        requested: "auto", "torch" or "openvino" (--backend / STUDIO_BACKEND); None means auto.
        device: where the weights live ("cpu", "cuda", "mps").
        unet_parameters: the UNet's parameter count; auto keeps small models on torch.
        installed: whether OpenVINO imports; found out when None.
        machine: platform.machine(); found out when None.
    """
    name = check_backend(requested)
    if name == "torch":
        return Choice("torch", "PyTorch, as asked (--backend torch).")
    if device != "cpu":
        if name == "openvino":
            raise ValueError(f"--backend openvino runs on the CPU only, but the model is on {device}; "
                             "use --device cpu or --backend auto.")
        return Choice("torch", f"PyTorch: the model runs on {device}, where OpenVINO is not used.")
    if installed is None:
        installed = openvino_installed()
    if not installed:
        return Choice("torch", f"PyTorch: OpenVINO is not installed; {INSTALL_HINT} makes Intel CPUs about 1.5x "
                               "faster.")
    if name == "openvino":
        return Choice("openvino", "OpenVINO, as asked (--backend openvino).")
    if not is_x86(machine):
        return Choice("torch", "PyTorch: OpenVINO is used on x86 CPUs only.")
    if unet_parameters < SMALL_MODEL_PARAMETERS:
        return Choice("torch", "PyTorch: the model is so small that converting it would cost more than it saves.")
    return Choice("openvino", "OpenVINO: an x86 CPU with OpenVINO installed.")
