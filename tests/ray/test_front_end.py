"""The UI, the REST API and the video jobs, unchanged in front of the Ray deployment (--ray)."""
from __future__ import annotations

import base64
import io
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.backends.ray import WorkerStopped
from engine.files import pnginfo
from engine.image.generate import text_to_image
from engine.image.request import ImageRequest
from engine.jobs.runner import replica_of, run_job
from engine.video import run_folder, walk, walk_request

from .conftest import REPLICAS, wait_for_replicas

EXAMPLE = Path(__file__).resolve().parents[2] / "presets/examples/astronaut.jpg"
T2I = dict(prompt="a red apple", negative_prompt="", num_inference_steps=3, guidance_scale=7, width=64,
           height=64, seed=11, batch_count=1, sampler="Euler")


@pytest.fixture(scope="module")
def ray_app(engine_handle):
    """`python app.py --ray --ray-replicas 2` on the tiny model: it finds the running deployment and fronts it."""
    import app

    args = app.parse_args(["--model", "tiny", "--dtype", "float32", "--device", "cpu", "--ray",
                           "--ray-replicas", str(REPLICAS), "--keep-outputs-hours", "0"])
    demo, api = app.build_app(args)
    return demo, api


@pytest.fixture(scope="module")
def http(ray_app):
    from fastapi.testclient import TestClient

    with TestClient(ray_app[1]) as client:
        yield client


def test_the_flags_read_their_environment_variables(monkeypatch):
    import app

    monkeypatch.setenv("STUDIO_RAY", "1")
    monkeypatch.setenv("STUDIO_RAY_ADDRESS", "auto")
    monkeypatch.setenv("STUDIO_RAY_REPLICAS", "3")
    args = app.parse_args([])
    assert (args.ray, args.ray_address, args.ray_replicas) == (True, "auto", 3)


def test_a_bad_replica_count_is_one_line_and_exit_code_2(capsys):
    import app

    assert app.main(["--model", "tiny", "--ray", "--ray-replicas", "0", "--keep-outputs-hours", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --ray-replicas must be at least 1."


def test_rest_names_the_replica_and_keeps_the_pixels(http, tiny_manager):
    reply = http.post("/api/txt2img", json={"prompt": "a red apple", "num_inference_steps": 3, "width": 64,
                                             "height": 64, "seed": 5, "sampler": "Euler"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["replica"]
    image = Image.open(io.BytesIO(base64.b64decode(body["images"][0]["png_base64"])))
    assert pnginfo.parse_parameters(body["images"][0]["parameters"])["Replica"] == body["replica"]
    local = text_to_image(tiny_manager, ImageRequest(prompt="a red apple", num_inference_steps=3, width=64,
                                                     height=64, seed=5, sampler="Euler"))
    assert np.array_equal(np.asarray(image.convert("RGB")), np.asarray(local.images[0].image))


def test_rest_face_jobs_and_sentences_through_ray(http):
    reply = http.post("/api/gender-swap", files={"image": ("face.jpg", EXAMPLE.read_bytes(), "image/jpeg")},
                      data={"direction": "woman", "num_inference_steps": 2, "size": 64, "seed": 7})
    assert reply.status_code == 200, reply.text
    assert reply.json()["replica"] and reply.json()["images"]
    bad = http.post("/api/txt2img", json={"prompt": "x", "sampler": "No such sampler"})
    assert bad.status_code == 422 and "sampler" in bad.json()["error"].lower()


def test_gradio_client_works_unchanged(ray_app):
    """The UI served as `uvicorn app:app` does, reached with gradio_client."""
    import threading
    import time

    import uvicorn
    from gradio_client import Client

    from tests.app.conftest import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(ray_app[1], host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        gallery, _, info, params, _ = client.predict(**T2I, api_name="/txt2img")
        fields = pnginfo.parse_parameters(pnginfo.read_parameters(gallery[0]["image"]))
        assert fields["Seed"] == "11" and fields["Replica"] and "11" in info
    finally:
        server.should_exit = True
        thread.join(10)


def test_a_walk_keeps_its_frames_when_its_replica_dies_and_resumes(ray_manager, tmp_path):
    paths = run_folder.RunPaths.in_folder(tmp_path / "walk", "walk")
    req = walk_request.WalkRequest(prompts=["a cat", "a dog"], seeds=[1, 2], num_frames=24, num_inference_steps=6,
                           width=64, height=64, sampler="Euler", fps=8)
    killed = []

    def kill_after_two_frames(update):
        if update.index >= 2 and not killed:
            placement = next(iter(ray_manager.runner.running.values()))
            os.kill(placement.pid, signal.SIGKILL)
            killed.append(placement)

    with pytest.raises(WorkerStopped):
        run_job(walk.latent_walk, ray_manager, req, paths, kill_after_two_frames, None)
    kept = sorted(paths.frames.glob("*.png"))
    assert 2 <= len(kept) < 24 and paths.plan.exists()
    done = run_job(walk.resume, ray_manager, paths.plan, None, None)
    assert len(done.frames) == 24 and done.video.exists() and not done.interrupted
    assert replica_of(done)
    states, alive = wait_for_replicas(gone=killed[0].replica)
    assert states.get("RUNNING") == REPLICAS and killed[0].replica not in alive


def test_the_status_line_says_the_replicas_hold_the_weights(ray_manager):
    assert "run by Ray Serve replicas" in ray_manager.status() and "first use" not in ray_manager.status()
