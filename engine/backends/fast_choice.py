"""What Fast means on the running back end: feature reuse on PyTorch, Few-step mode on OpenVINO, where feature
reuse would leave the faster compiled model for a slower PyTorch run; and the speed-up measured for it."""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass

from engine.loaders import fewstep

NO_FEWSTEP = ("Fast on OpenVINO runs Few-step mode, which needs an LCM, TCD or Hyper-SD LoRA for SD 1.5 in "
              "weights/Lora (lcm-lora-sdv1-5.safetensors from the Downloads accordion); untick Fast or add one.")
ON_OPENVINO = ("On OpenVINO Fast is Few-step mode, which this job doesn't run; untick Fast (OpenVINO is already the "
               "faster path here) or start with --backend torch for feature reuse.")

_lock = threading.Lock()
_seconds: dict[tuple[str, bool], list[float]] = {}  # (back end, Fast) -> recent seconds per image per megapixel
KEPT = 20  # recent runs averaged per record


@dataclass(frozen=True)
class FastOffer:
    """Whether the Fast toggle is offered on this back end, what it does there, and why not when it is not."""

    mode: str | None  # "reuse" (PyTorch feature reuse), "fewstep" (the few-step LoRA on OpenVINO) or None
    few: fewstep.FewStep | None = None
    reason: str = ""


def offer(manager) -> FastOffer:
    """Fast on the manager's back end: feature reuse on PyTorch; on OpenVINO Few-step mode, or nothing without its LoRA."""
    if manager.backend != "openvino":
        return FastOffer("reuse")
    found = fewstep.find(manager.loras)
    return FastOffer("fewstep", found[0]) if found else FastOffer(None, reason=NO_FEWSTEP)


def resolve(manager, req):
    """The request Fast stands for on this back end: on OpenVINO Few-step mode's prompt tag, sampler, steps and CFG."""
    if not req.fast or manager.backend != "openvino":
        return req
    chosen = offer(manager)
    if chosen.mode is None:
        raise ValueError(chosen.reason)
    few = chosen.few
    return dataclasses.replace(req, fast=False, prompt=fewstep.with_tag(req.prompt, few), sampler=few.sampler,
                               num_inference_steps=few.num_inference_steps, guidance_scale=few.guidance_scale)


def record(backend: str, fast: bool, seconds: float, width: int, height: int, images: int) -> None:
    """Keep one finished run's time per image and megapixel, for the speed-up the Fast label states."""
    if images <= 0 or seconds <= 0:
        return
    value = seconds / images / max(width * height / 1e6, 1e-6)
    with _lock:
        runs = _seconds.setdefault((backend, bool(fast)), [])
        runs.append(value)
        del runs[:-KEPT]


def speedup(backend: str) -> float | None:
    """Mean time per image without Fast over with it on `backend`, or None until both have been measured."""
    with _lock:
        plain, fast = _seconds.get((backend, False)), _seconds.get((backend, True))
        if not plain or not fast:
            return None
        return (sum(plain) / len(plain)) / (sum(fast) / len(fast))


def label(chosen: FastOffer, backend: str) -> str:
    """The Fast toggle's label: what it does here, with the speed-up measured on this back end once known."""
    measured = speedup(backend)
    figure = f"{measured:.1f}× faster measured here" if measured else "speed-up shown once measured here"
    if chosen.mode == "fewstep":
        return f"Fast: Few-step mode on OpenVINO ({chosen.few.label}; {figure})"
    if chosen.mode == "reuse":
        return f"Fast: reuse deep features between steps ({figure}, slightly different result)"
    return "Fast: not offered on OpenVINO without a few-step LoRA"
