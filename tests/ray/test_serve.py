"""The engine on Ray Serve: replicas serve concurrently with in-process pixels, progress, Stop, and a dying worker."""
from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from engine.backends.ray import WORKER_STOPPED, WorkerStopped
from engine.files import pnginfo
from engine.image.generate import text_to_image
from engine.image.request import ImageRequest, RunControl
from engine.jobs.runner import replica_of, run_job

from .conftest import REPLICAS, live_replicas, wait_for_replicas

REQ = dict(prompt="a red apple", negative_prompt="", num_inference_steps=4, guidance_scale=7, width=64, height=64,
           sampler="Euler")


def pixels(result):
    return np.asarray(result.images[0].image)


def test_a_lora_tag_runs_on_the_replica_as_in_process(ray_manager, ray_loras):
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    req = ImageRequest(**{**REQ, "prompt": "a red apple <lora:ray_style:0.8>"}, seed=7)
    remote = run_job(text_to_image, ray_manager, req, None, None)
    local = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"), lora_dir=ray_loras)
    assert np.array_equal(pixels(remote), pixels(text_to_image(local, req)))
    plain = text_to_image(local, ImageRequest(**REQ, seed=7))
    assert not np.array_equal(pixels(remote), pixels(plain))
    assert "ray_style" in pnginfo.parse_parameters(remote.images[0].parameters)["Lora hashes"]


def test_six_concurrent_requests_use_both_replicas_and_match_in_process(ray_manager, tiny_manager):
    seeds = [101, 102, 103, 104, 105, 106]
    with ThreadPoolExecutor(len(seeds)) as pool:
        results = list(pool.map(lambda s: run_job(text_to_image, ray_manager, ImageRequest(**REQ, seed=s), None,
                                                  None), seeds))
    replicas = {replica_of(r) for r in results}
    assert len(replicas) == REPLICAS and None not in replicas
    for seed, result in zip(seeds, results):
        local = text_to_image(tiny_manager, ImageRequest(**REQ, seed=seed))
        assert np.array_equal(pixels(result), pixels(local)), f"seed {seed} differs from the in-process image"
        fields = pnginfo.parse_parameters(result.images[0].parameters)
        assert fields["Replica"] == replica_of(result) and fields["Seed"] == str(seed)
        assert "Replica" not in pnginfo.parse_parameters(local.images[0].parameters)


def test_progress_streams_back_and_stop_ends_the_job_on_its_replica(ray_manager):
    updates, control = [], RunControl()

    def on_step(update):
        updates.append(update)
        if update.step == 3:
            control.stop()

    req = ImageRequest(**{**REQ, "num_inference_steps": 150}, seed=7, batch_count=3)
    started = time.monotonic()
    result = run_job(text_to_image, ray_manager, req, on_step, control)
    assert result.interrupted and len(result.images) == 1 and result.images[0].interrupted
    assert any("Stopped early" in note for note in result.notes)
    assert updates[0].step == 1 and updates[0].total_steps == 150
    assert any(u.preview is not None for u in updates)
    assert max(u.step for u in updates) < 150  # the replica's loop ended early, not just our reading of it
    assert time.monotonic() - started < 60
    assert not ray_manager.runner.running


def test_a_bad_request_gets_the_engines_sentence(ray_manager):
    with pytest.raises(ValueError, match="Steps must be a whole number"):
        run_job(text_to_image, ray_manager, ImageRequest(**{**REQ, "num_inference_steps": 0}), None, None)


def test_a_killed_replica_gives_a_sentence_and_the_deployment_recovers(ray_manager):
    runner, killed = ray_manager.runner, []
    assert len(live_replicas()) == REPLICAS

    def kill_on_first_step(update):
        if not killed:
            placement = next(iter(runner.running.values()))
            os.kill(placement.pid, signal.SIGKILL)
            killed.append(placement)

    req = ImageRequest(**{**REQ, "num_inference_steps": 150}, seed=9)
    with pytest.raises(WorkerStopped, match=WORKER_STOPPED):
        run_job(text_to_image, ray_manager, req, kill_on_first_step, RunControl())
    assert killed
    after = run_job(text_to_image, ray_manager, ImageRequest(**REQ, seed=9), None, None)
    assert after.images and replica_of(after) != killed[0].replica
    states, alive = wait_for_replicas(gone=killed[0].replica)
    assert states.get("RUNNING") == REPLICAS and len(alive) == REPLICAS and killed[0].replica not in alive, states


def test_full_replica_queues_give_the_busy_answer():
    """Serve's BackPressureError (every replica's queue full) becomes the app's own "Busy" sentence."""
    from ray.serve.exceptions import BackPressureError

    from engine.backends.ray import RayRunner
    from engine.jobs.gate import BUSY, Busy
    from engine.pipeline.manager import PipelineManager

    class FullQueues:
        def options(self, **_):
            return self

        @property
        def run(self):
            return self

        def remote(self, call):
            raise BackPressureError(num_queued_requests=20, max_queued_requests=20)

    manager = PipelineManager("tiny")
    manager.runner = RayRunner(FullQueues(), board=object())
    with pytest.raises(Busy, match=BUSY):
        run_job(text_to_image, manager, ImageRequest(**REQ), None, RunControl())


def test_a_thread_running_an_event_loop_can_still_run_jobs(ray_manager):
    import asyncio

    async def inside_a_loop():
        return run_job(text_to_image, ray_manager, ImageRequest(**REQ, seed=3), None, None)

    with ThreadPoolExecutor(1) as pool:  # a thread of its own, whatever loop this one may have
        result = pool.submit(asyncio.run, inside_a_loop()).result()
    assert replica_of(result) is not None
