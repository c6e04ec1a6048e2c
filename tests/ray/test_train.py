"""With --ray a training runs as its own Ray task: the registry (the Train tab's and REST's) follows its steps, Stop
and Resume reach it, the LoRA lands in the front end's folder, and the front end never loads the weights."""
from __future__ import annotations

import time

import pytest
from safetensors.torch import load_file

from engine.train.jobs import trainings
from tests.engine.train.test_train import request, shapes


@pytest.fixture
def front_end(engine_handle, tmp_path):
    """A manager with no weights of its own whose trainings run as Ray tasks (no CPU reserved: the replicas hold
    the test cluster's two)."""
    from engine.backends.ray import RayRunner
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    def local(model: str = "tiny"):
        return PipelineManager(model, RuntimeOptions(device="cpu", dtype="float32", backend="torch"),
                               lora_dir=tmp_path / "Lora", weights_dir=tmp_path / "weights")

    def make(model: str = "tiny"):
        manager = local(model)
        manager.runner = RayRunner(engine_handle)
        manager.runner.train_options = {"num_cpus": 0}
        return manager

    make.local = local  # the same folders, trained in this process
    return make


def follow(job, until=None, timeout: float = 180) -> list[int]:
    """The steps the front end saw, polling as the Train tab does, until `until(job)` or the end."""
    seen, deadline = [], time.monotonic() + timeout
    while not job.finished and time.monotonic() < deadline:
        if not seen or seen[-1] != job.step:
            seen.append(job.step)
        if until is not None and until(job):
            return seen
        time.sleep(0.05)
    assert job.wait(5), f"the training never ended: {job.snapshot()}"
    return seen


def test_a_training_runs_on_a_worker_and_the_front_end_follows_it(front_end, tmp_path):
    manager = front_end()
    job = trainings(manager).start(request(shapes(tmp_path / "photos", 3), "rayone", steps=6, sample_every=3,
                                           sample_steps=2))
    seen = follow(job)
    state = job.snapshot()
    assert state["state"] == "done", state
    assert state["step"] == state["steps"] == 6 and len([s for s in seen if 0 < s < 6]) >= 1, seen
    assert [step for step, _ in job.losses] == [1, 2, 3, 4, 5, 6]
    lora = tmp_path / "Lora" / "rayone.safetensors"
    assert state["lora"] == str(lora) and any(k.startswith("lora_unet_") for k in load_file(lora))
    assert len(state["samples"]) == 4 and all(p.is_file() for p in job.samples)
    assert manager._base is None  # the weights stayed on the worker


def test_stop_reaches_the_worker(front_end, tmp_path):
    manager = front_end()
    registry = trainings(manager)
    job = registry.start(request(shapes(tmp_path / "photos", 3), "raystop", steps=1000, checkpoint_every=1000))
    follow(job, until=lambda j: j.step >= 2)
    registry.stop(job.id)
    follow(job)
    assert job.state == "stopped" and 2 <= job.step < 1000, job.snapshot()
    assert (tmp_path / "Lora" / "raystop.safetensors").is_file()
    assert manager._base is None


def test_resume_continues_on_ray_where_a_run_stopped(front_end, tmp_path):
    from engine.image.request import RunControl
    from engine.train.loop import train_lora

    manager = front_end()
    control = RunControl()
    stopped = train_lora(front_end.local(), request(shapes(tmp_path / "photos", 3), "rayresume", steps=8), control,
                         on_progress=lambda p: control.stop() if p.step >= 3 else None)
    assert stopped.stopped and stopped.steps_done == 3
    job = trainings(manager).resume("rayresume")
    seen = follow(job)
    assert job.state == "done" and job.step == 8 and seen[0] == 3, job.snapshot()
    assert [step for step, _ in job.losses] == list(range(1, 9))  # one curve, the earlier steps too
    assert any("Resumed at step 3" in note for note in job.notes)
    assert manager._base is None


def test_a_refusal_on_the_worker_is_the_jobs_sentence(front_end, tmp_path):
    manager = front_end("no-such-model.safetensors")
    job = trainings(manager).start(request(shapes(tmp_path / "photos", 3), "raybad", steps=2))
    follow(job)
    assert job.state == "failed" and "no-such-model" in job.error and "\n" not in job.error, job.snapshot()
