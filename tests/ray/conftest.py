"""One local Ray cluster for the whole session, with the engine deployed on two replicas of the tiny model."""
from __future__ import annotations

import os
import time

import pytest

REPLICAS = 2


@pytest.fixture(scope="session")
def ray_outputs(tmp_path_factory):
    return tmp_path_factory.mktemp("ray-outputs")


@pytest.fixture(scope="session")
def ray_loras(tmp_path_factory):
    """A LoRA folder the replicas are started with (--lora-dir), holding one small random LoRA."""
    from engine.pipeline.manager import PipelineManager, RuntimeOptions
    from tests.engine import lora_files as lf

    folder = tmp_path_factory.mktemp("ray-loras")
    maker = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32")).base()
    lf.write_lora(folder, "ray_style", lf.kohya_lora(maker, seed=0))
    return folder


@pytest.fixture(scope="session")
def engine_handle(ray_outputs, ray_loras):
    """The Serve deployment (2 replicas, tiny model, CPU float32), started once; Ray stops at the session's end."""
    import ray
    from ray import serve

    from engine.pipeline.manager import RuntimeOptions
    from server.ray_app import serve_engine

    previous = os.environ.get("STUDIO_OUTPUT_DIR")
    os.environ["STUDIO_OUTPUT_DIR"] = str(ray_outputs)  # the replicas write where the front end reads
    try:
        handle = serve_engine(None, "tiny", RuntimeOptions(device="cpu", dtype="float32"), REPLICAS, num_cpus=2,
                              folders={"lora_dir": str(ray_loras)})
    finally:
        if previous is None:
            os.environ.pop("STUDIO_OUTPUT_DIR", None)
        else:
            os.environ["STUDIO_OUTPUT_DIR"] = previous
    yield handle
    serve.shutdown()
    ray.shutdown()


@pytest.fixture(scope="session")
def ray_manager(engine_handle):
    """A front-end manager (no weights of its own) whose jobs run on the replicas."""
    from engine.backends.ray import RayRunner
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32", concurrency=REPLICAS))
    manager.runner = RayRunner(engine_handle)
    return manager


def live_replicas() -> set[str]:
    """Ids of the engine replicas whose actors are alive now (Serve names each replica's actor after its id)."""
    import ray

    from server.ray_app import APP_NAME, DEPLOYMENT

    tag = f"{APP_NAME}#{DEPLOYMENT}#"
    return {a["name"].rsplit("#", 1)[1] for a in ray.util.list_named_actors(all_namespaces=True)
            if tag in a["name"]}


def wait_for_replicas(gone: str | None = None, count: int = REPLICAS, timeout: float = 120) -> tuple[dict, set]:
    """Wait until `count` replicas run and the replica `gone` is not among them; return Serve's states and ids."""
    from ray import serve

    from server.ray_app import APP_NAME, DEPLOYMENT

    deadline = time.monotonic() + timeout
    while True:
        states = serve.status().applications[APP_NAME].deployments[DEPLOYMENT].replica_states
        alive = live_replicas()
        if (states.get("RUNNING") == count and len(alive) == count and gone not in alive) \
                or time.monotonic() > deadline:
            return states, alive
        time.sleep(0.5)
