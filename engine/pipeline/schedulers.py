"""A1111 sampler names mapped to diffusers schedulers, built fresh per request because schedulers carry run state."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import diffusers

from engine.text.limits import excerpt


@dataclass(frozen=True)
class Sampler:
    """One entry of the sampler menu: the diffusers class and the settings that make it the A1111 sampler."""

    cls_name: str
    settings: dict[str, Any] = field(default_factory=dict)
    stochastic: bool = False  # injects fresh noise every step, so walks and timelapses flicker


KARRAS = {"use_karras_sigmas": True}
SDE = {"algorithm_type": "sde-dpmsolver++"}

SAMPLERS: dict[str, Sampler] = {
    "DPM++ 2M": Sampler("DPMSolverMultistepScheduler"),
    "DPM++ 2M Karras": Sampler("DPMSolverMultistepScheduler", KARRAS),
    "DPM++ 2M SDE": Sampler("DPMSolverMultistepScheduler", SDE, stochastic=True),
    "DPM++ 2M SDE Karras": Sampler("DPMSolverMultistepScheduler", {**SDE, **KARRAS}, stochastic=True),
    "DPM++ SDE": Sampler("DPMSolverSinglestepScheduler"),
    "DPM++ SDE Karras": Sampler("DPMSolverSinglestepScheduler", KARRAS),
    "DPM2": Sampler("KDPM2DiscreteScheduler"),
    "DPM2 Karras": Sampler("KDPM2DiscreteScheduler", KARRAS),
    "DPM2 a": Sampler("KDPM2AncestralDiscreteScheduler", stochastic=True),
    "DPM2 a Karras": Sampler("KDPM2AncestralDiscreteScheduler", KARRAS, stochastic=True),
    "Euler": Sampler("EulerDiscreteScheduler"),
    "Euler a": Sampler("EulerAncestralDiscreteScheduler", stochastic=True),
    "Heun": Sampler("HeunDiscreteScheduler"),
    "LMS": Sampler("LMSDiscreteScheduler"),
    "LMS Karras": Sampler("LMSDiscreteScheduler", KARRAS),
    "DDIM": Sampler("DDIMScheduler"),
    "PNDM": Sampler("PNDMScheduler", {"skip_prk_steps": True}),
    "PLMS": Sampler("PNDMScheduler", {"skip_prk_steps": True}),
    "UniPC": Sampler("UniPCMultistepScheduler"),
    "LCM": Sampler("LCMScheduler"),
    "TCD": Sampler("TCDScheduler"),  # for TCD LoRAs (Few-step mode)
    "DDIM SGM Uniform": Sampler("DDIMScheduler", {"timestep_spacing": "trailing"}),  # Hyper-SD LoRAs' schedule
}
DEFAULT_SAMPLER = "DPM++ 2M Karras"
SCHEDULE_SUFFIXES = ("Karras", "SGM Uniform")


def sampler_names() -> list[str]:
    """The menu, in a stable order."""
    return list(SAMPLERS)


def check_sampler(name: str) -> Sampler:
    """Reject unknown names with the list of valid ones."""
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(f"Unknown sampler {excerpt(name)}; choose one of: {', '.join(SAMPLERS)}.") from None


def make_scheduler(name: str, base_config: dict[str, Any]):
    """A new scheduler instance for one request, so concurrent runs never share state."""
    sampler = check_sampler(name)
    cls = getattr(diffusers, sampler.cls_name)
    return cls.from_config(dict(base_config), **sampler.settings)


def is_stochastic(name: str) -> bool:
    """Ancestral and SDE samplers add noise each step; videos made with them flicker."""
    return check_sampler(name).stochastic


def a1111_fields(name: str) -> dict[str, str]:
    """Split 'DPM++ 2M Karras' into A1111's 'Sampler' and 'Schedule type' PNG-info fields."""
    for suffix in SCHEDULE_SUFFIXES:
        if name.endswith(" " + suffix):
            return {"Sampler": name[: -len(suffix) - 1], "Schedule type": suffix}
    return {"Sampler": name}


def from_a1111_fields(sampler: str, schedule_type: str | None = None) -> str | None:
    """Join A1111's two fields back into one menu name, or None when we have no such sampler."""
    candidates = [sampler]
    if schedule_type and schedule_type.lower() not in ("automatic", "uniform"):
        candidates.insert(0, f"{sampler} {schedule_type}")
    by_lower = {name.lower(): name for name in SAMPLERS}
    return next((by_lower[c.lower()] for c in candidates if c.lower() in by_lower), None)
