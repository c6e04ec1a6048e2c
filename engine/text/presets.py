"""Aging and gender-swap prompt presets: JSON data in presets/, loaded into checked dataclasses."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from engine.text.limits import excerpt

PRESETS_DIR = Path(__file__).resolve().parents[2] / "presets"
ADULT_AGE = 18


@dataclass(frozen=True)
class AgingPreset:
    """How each age is described to the model."""

    prompt: str  # template with {age}, {subject} and {stage}
    negative_prompt: str  # the same for every age
    stages: tuple[tuple[int, str], ...]  # (max_age, words), in increasing max_age
    subjects: dict[str, dict[str, str]]  # subject -> {"young": ..., "adult": ...}
    defaults: dict

    def prompt_for(self, age: int, subject: str) -> str:
        """The prompt for one age, e.g. 'close-up portrait photo of a 40 year old woman, middle-aged, ...'."""
        if subject not in self.subjects:
            raise ValueError(f"Unknown subject {excerpt(subject)}; choose {', '.join(self.subjects)}.")
        stage = next(words for max_age, words in self.stages if age <= max_age)
        noun = self.subjects[subject]["young" if age < ADULT_AGE else "adult"]
        return self.prompt.format(age=age, subject=noun, stage=stage)


@dataclass(frozen=True)
class GenderPreset:
    """The prompts that turn a face towards one gender."""

    directions: dict[str, dict[str, str]]  # "woman"/"man" -> {"prompt": ..., "negative_prompt": ...}
    defaults: dict

    def prompts_for(self, direction: str) -> tuple[str, str]:
        if direction not in self.directions:
            raise ValueError(f"Unknown direction {excerpt(direction)}; choose {' or '.join(self.directions)}.")
        entry = self.directions[direction]
        return entry["prompt"], entry["negative_prompt"]


def _read(name: str) -> dict:
    try:
        return json.loads((PRESETS_DIR / name).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"The preset file presets/{name} can't be read ({exc}); restore it from the repository.")


@lru_cache(maxsize=None)
def aging_preset() -> AgingPreset:
    data = _read("aging.json")
    stages = tuple((int(s["max_age"]), str(s["words"])) for s in data["stages"])
    if [m for m, _ in stages] != sorted(m for m, _ in stages) or stages[-1][0] < 100:
        raise ValueError("presets/aging.json: stages must be in increasing max_age and reach age 100.")
    for key in ("{age}", "{subject}", "{stage}"):
        if key not in data["prompt"]:
            raise ValueError(f"presets/aging.json: the prompt template needs {key}.")
    return AgingPreset(data["prompt"], data["negative_prompt"], stages, data["subjects"], data["defaults"])


@lru_cache(maxsize=None)
def gender_preset() -> GenderPreset:
    data = _read("gender.json")
    for direction, entry in data["directions"].items():
        if not entry.get("prompt") or "negative_prompt" not in entry:
            raise ValueError(f"presets/gender.json: {direction} needs a prompt and a negative_prompt.")
    return GenderPreset(data["directions"], data["defaults"])
