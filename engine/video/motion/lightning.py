"""AnimateDiff-Lightning: motion adapters distilled for 1, 2, 4 or 8 steps, with the scheduler and CFG they need.

ByteDance's model card: load `animatediff_lightning_{N}step_diffusers.safetensors` as a MotionAdapter, use
`EulerDiscreteScheduler(timestep_spacing="trailing", beta_schedule="linear")`, `guidance_scale=1.0` and N steps.
The 1-step file is experimental; the 2-, 4- and 8-step files are the ones for use.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

SAMPLER = "Euler"
SCHEDULE = {"timestep_spacing": "trailing", "beta_schedule": "linear", "clip_sample": False}
STEPS = (1, 2, 4, 8)
NAME = re.compile(r"animatediff[-_ ]?lightning[-_ ]?(\d+)[-_ ]?steps?", re.IGNORECASE)


@dataclass(frozen=True)
class Lightning:
    """A Lightning adapter's published settings: N steps, Euler with trailing timesteps, CFG 1 (one UNet pass)."""

    num_inference_steps: int
    sampler: str = SAMPLER
    guidance_scale: float = 1.0

    @property
    def experimental(self) -> bool:
        return self.num_inference_steps == 1

    @property
    def label(self) -> str:
        note = ", experimental" if self.experimental else ""
        return (f"AnimateDiff-Lightning {self.num_inference_steps}-step ({self.sampler} trailing, "
                f"{self.num_inference_steps} steps, CFG {self.guidance_scale:g}{note})")


def recognise(name: str | None) -> Lightning | None:
    """A Lightning adapter by its published file or folder name (animatediff_lightning_4step_diffusers...)."""
    match = NAME.search(Path(str(name or "")).name)
    if not match or int(match.group(1)) not in STEPS:
        return None
    return Lightning(int(match.group(1)))


def with_defaults(req, lightning: Lightning | None):
    """The request with the adapter's steps, sampler and CFG, as the form, the CLI and the API start from."""
    if lightning is None:
        return req
    return replace(req, num_inference_steps=lightning.num_inference_steps, sampler=lightning.sampler,
                   guidance_scale=lightning.guidance_scale)


def notes_for(req, lightning: Lightning) -> list[str]:
    """What a run on a Lightning adapter tells the user: experimental, or settings other than the card's."""
    notes = []
    if lightning.experimental:
        notes.append("The 1-step Lightning adapter is experimental (its model card says so); the 2-, 4- and "
                     "8-step ones give steadier clips.")
    asked = (req.num_inference_steps, req.sampler, float(req.guidance_scale))
    if asked != (lightning.num_inference_steps, lightning.sampler, lightning.guidance_scale):
        notes.append(f"{lightning.label} was distilled for those settings; this clip used {req.sampler}, "
                     f"{req.num_inference_steps} steps and CFG {req.guidance_scale:g}.")
    return notes
