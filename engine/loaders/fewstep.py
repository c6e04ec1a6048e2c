"""Few-step mode: an LCM, TCD or Hyper-SD LoRA for SD 1.5 with its scheduler, 4 steps and CFG 1 instead of 20 and 7."""
from __future__ import annotations

import re
from dataclasses import dataclass

from engine.loaders.lora import TAG, LoraFolder, log
from engine.text.limits import excerpt


@dataclass(frozen=True)
class FewStep:
    """A few-step LoRA found in the LoRA folder and the settings it was distilled for."""

    lora: str  # the file's name, as written in <lora:NAME:1>
    kind: str  # "LCM", "TCD" or "Hyper-SD"
    sampler: str  # the matching engine.pipeline.schedulers entry
    num_inference_steps: int
    guidance_scale: float  # 1 turns classifier-free guidance off: one UNet pass a step, half the work

    @property
    def tag(self) -> str:
        return f"<lora:{self.lora}:1>"

    @property
    def label(self) -> str:
        return (f"{self.kind}: {self.lora} ({self.sampler}, {self.num_inference_steps} steps, "
                f"CFG {self.guidance_scale:g})")


def recognise(name: str) -> FewStep | None:
    """Tell a few-step LoRA by its published file name (lcm-lora-sdv1-5, TCD-SD15, Hyper-SD15-4steps-lora...).

    SDXL versions (a name with "xl") are left out: they don't fit SD 1.5 models.
    """
    low = name.lower()
    if "xl" in low:
        return None
    if re.search(r"hyper[-_ ]?sd", low):
        match = re.search(r"(\d+)\s*-?steps?", low)
        steps = int(match.group(1)) if match else 4
        cfg = 5.0 if "cfg" in low else 1.0  # the "CFG" versions keep guidance; the others are made for CFG 1
        return FewStep(name, "Hyper-SD", "DDIM SGM Uniform", max(1, min(steps, 12)), cfg)
    if re.search(r"(^|[^a-z])tcd([^a-z]|$)", low):
        return FewStep(name, "TCD", "TCD", 4, 1.0)
    if re.search(r"(^|[^a-z])lcm([^a-z]|$)", low):
        return FewStep(name, "LCM", "LCM", 4, 1.0)
    return None


def find(folder: LoraFolder) -> list[FewStep]:
    """The few-step LoRAs in the folder, best known first (LCM, then TCD, then Hyper-SD)."""
    found = [fs for fs in (recognise(name) for name in folder.names()) if fs is not None]
    order = {"LCM": 0, "TCD": 1, "Hyper-SD": 2}
    return sorted(found, key=lambda fs: (order[fs.kind], fs.lora.lower()))


def with_tag(prompt: str, few: FewStep) -> str:
    """The prompt with the few-step LoRA's tag, and without another few-step LoRA's (one at a time)."""
    def keep(match: re.Match) -> str:
        name = match.group(1).split(":")[0].strip()
        return "" if recognise(name) is not None else match.group(0)

    prompt = TAG.sub(keep, prompt or "").strip()
    return f"{prompt} {few.tag}".strip()


def pick(folder: LoraFolder, name: str | None = None) -> FewStep:
    """The few-step LoRA called `name`, or the first one found; a sentence says what to get when there is none."""
    found = find(folder)
    if name:
        for few in found:
            if few.lora.lower() == name.lower():
                return few
        folder.path(name)  # unknown name: lists what is there
        raise ValueError(f"{excerpt(name)} is not a few-step LoRA this app recognises (LCM, TCD or Hyper-SD for SD 1.5, "
                         "by its published file name).")
    if not found:
        log.info("Few-step mode: no LCM, TCD or Hyper-SD LoRA in %s.", folder.folder)
        raise ValueError("Few-step mode needs an LCM, TCD or Hyper-SD LoRA for SD 1.5 in the LoRA folder, e.g. "
                         "lcm-lora-sdv1-5.safetensors (latent-consistency/lcm-lora-sdv1-5 on the Hugging Face hub).")
    return found[0]
