"""Resume for Text to video: the latents, the scheduler's state and the noise generator saved after every step,
so a clip stopped, crashed or cut off part-way continues from its last step and ends with the same frames."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from engine.video.run_folder import RunPaths

SUFFIX = ".latents.pt"
_SKIPPED = {"_internal_dict", "timesteps"}  # the config, and the timesteps the restored scheduler recomputes


def checkpoint_path(paths: RunPaths) -> Path:
    """Where a run's last finished step is kept: beside its plan, `<name>.latents.pt`."""
    return paths.video.with_suffix(SUFFIX)


def _plain(value):
    """A scheduler attribute as something `torch.load(weights_only=True)` reads back; None-marker when not."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return _UNSAVED if any(v is _UNSAVED for v in items) else items
    return _UNSAVED


_UNSAVED = object()


def snapshot(scheduler, step: int, latents: torch.Tensor, generator: torch.Generator) -> dict:
    """Everything the steps after `step` depend on, besides the request: latents, scheduler state, noise state."""
    state = {}
    for name, value in vars(scheduler).items():
        plain = _plain(value)
        if name not in _SKIPPED and plain is not _UNSAVED:
            state[name] = plain
    return {"step": step, "latents": latents.detach().cpu().clone(), "scheduler": state,
            "generator": generator.get_state()}


def save(path: Path, data: dict) -> None:
    """Write then rename, so a crash mid-write leaves the previous step's checkpoint whole."""
    temp = path.with_suffix(".tmp")
    torch.save(data, temp)
    os.replace(temp, path)


def load(path: Path) -> dict | None:
    """The saved step, or None when the run has none (it stopped before its first step finished)."""
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        int(data["step"]), data["latents"].shape, data["scheduler"], data["generator"]
    except Exception as exc:
        raise ValueError(f"{path.name} is not a saved step this app can read; start a new clip.") from exc
    return data


def _to(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, list):
        return [_to(v, device) for v in value]
    return value


def resumed_scheduler(scheduler, saved: dict):
    """A scheduler like `scheduler` whose state, once the pipeline sets its timesteps, is the saved step's, and
    which takes the saved latents as they are (they are already scaled)."""
    state = saved["scheduler"]

    class Resumed(type(scheduler)):
        @property
        def init_noise_sigma(self):
            return 1.0  # the saved latents are already scaled

        @init_noise_sigma.setter
        def init_noise_sigma(self, value):
            pass

        def set_timesteps(self, *args, **kwargs):
            super().set_timesteps(*args, **kwargs)
            for name, value in state.items():
                setattr(self, name, _to(value, self.timesteps.device))

    Resumed.__name__ = Resumed.__qualname__ = type(scheduler).__name__
    return Resumed.from_config(scheduler.config)


def resuming_pipeline(pipeline_cls, steps_done: int, **components):
    """A pipeline that passes over the first `steps_done` steps (diffusers skips a step while `interrupt` is True),
    so every step after them runs with the timesteps, and the step indices, of the whole schedule."""
    class Resuming(pipeline_cls):
        skip = steps_done

        @property
        def interrupt(self):
            if self.skip > 0:
                self.skip -= 1
                return True
            return self._interrupt

    Resuming.__name__ = Resuming.__qualname__ = pipeline_cls.__name__
    return Resuming(**components)
