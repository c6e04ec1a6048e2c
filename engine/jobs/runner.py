"""Where an engine job runs: in this process (the default) or on a Ray Serve replica (engine.backends.ray).

Tabs and the REST API call `run_job(fn, manager, ...)` with the same arguments they would give `fn`; the manager's
`runner` decides where the call happens, so the front end holds no second copy of the job logic.
"""
from __future__ import annotations

import importlib
from typing import Callable

# Every engine job a front end may run elsewhere, as "module:function". A replica runs only these.
JOBS = (
    "engine.image.generate:text_to_image",
    "engine.image.generate:image_to_image",
    "engine.image.generate:inpaint",
    "engine.xyz.plot:run_plot",
    "engine.faces.aging:aging_timelapse",
    "engine.faces.gender:gender_swap",
    "engine.video.walk:latent_walk",
    "engine.video.walk:resume",
    "engine.video.animate.run:animate",
    "engine.video.animate.run:resume",
    "engine.video.motion.text2video:text_to_video",
    "engine.video.motion.text2video:resume_text_to_video",
)


def run_job(fn: Callable, manager, *args, **kwargs):
    """Call `fn(manager, *args, **kwargs)` where `manager.runner` says; with no runner, right here."""
    runner = getattr(manager, "runner", None)
    if runner is None:
        return fn(manager, *args, **kwargs)
    return runner.run(fn, manager, *args, **kwargs)


def job_name(fn: Callable) -> str:
    """The name a job travels under; only the engine's own jobs (JOBS) have one."""
    name = f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', '')}"
    if name not in JOBS:
        raise ValueError(f"{name} is not an engine job that can run on a worker; add it to engine.jobs.runner.JOBS.")
    return name


def job_function(name: str) -> Callable:
    """The engine function behind a job name (refusing anything outside JOBS)."""
    if name not in JOBS:
        raise ValueError(f"{name} is not an engine job.")
    module, function = name.split(":")
    return getattr(importlib.import_module(module), function)


def replica_of(result) -> str | None:
    """The Ray Serve replica that made a result, or None when it was made in this process."""
    return getattr(result, "replica", None)
