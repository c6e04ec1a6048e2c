"""How long a training will take, said before it starts: measured on this CPU, and what a GPU would take."""
from __future__ import annotations

CPU_STEP_S_256 = 32.5  # bench/train.py: full-size SD 1.5, bf16, 256², on the 2-core EPYC this app targets
T4_STEP_S_512 = 1.0  # about one step a second on a T4 at 512² (the anchors' published figures; not measured here)
ZEROGPU_STEP_S_512 = 0.25  # an H200 slice (ZeroGPU): about 4 steps a second at 512² (same source; not measured)
TINY_STEP_S = 0.3  # the tiny test model, 64 px, on this CPU


def step_seconds(per_step_at: float, at: int, resolution: int, prior_preservation: bool) -> float:
    """A step's cost grows with the pixels; prior preservation doubles the batch."""
    return per_step_at * (resolution / at) ** 2 * (2 if prior_preservation else 1)


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} hours"


def estimate(steps: int, resolution: int, device: str, tiny: bool = False, prior_preservation: bool = False) -> str:
    """One or two sentences: the time here, and on a CPU plainly that a full-size training takes hours."""
    if tiny:
        return (f"The tiny test model trains {steps} steps in about "
                f"{duration(steps * step_seconds(TINY_STEP_S, 64, resolution, prior_preservation))}.")
    gpu = steps * step_seconds(T4_STEP_S_512, 512, resolution, prior_preservation)
    zero = steps * step_seconds(ZEROGPU_STEP_S_512, 512, resolution, prior_preservation)
    elsewhere = f"a T4-class GPU would take about {duration(gpu)}, ZeroGPU about {duration(zero)}"
    if str(device).startswith("cuda"):
        return f"{steps} steps at {resolution} px: on a GPU about {duration(gpu)} or less ({elsewhere})."
    here = steps * step_seconds(CPU_STEP_S_256, 256, resolution, prior_preservation)
    return (f"{steps} steps at {resolution} px on this CPU: about {duration(here)} (a step at 256 px takes about "
            f"{CPU_STEP_S_256:.0f} s here). A full-size training on a CPU takes hours; {elsewhere}. "
            "It runs here all the same, and the other tabs keep working meanwhile.")
