"""Training through the app: the gradio_client API, the REST job's life cycle, Stop and Resume, and an image made
while a training runs."""
from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
import requests
from PIL import Image

from tests.app.conftest import free_port
from tests.engine.train.test_train import shapes

FIELDS = {"class_word": "object", "rank": "4", "alpha": "4", "resolution": "64", "sample_steps": "2",
          "overwrite": "true"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app (UI and REST on one port) on the tiny model, with its own LoRA and output folders."""
    import os

    from app import api_app_kwargs, build_demo
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    previous = os.environ.get("STUDIO_OUTPUT_DIR")
    os.environ["STUDIO_OUTPUT_DIR"] = str(tmp_path_factory.mktemp("train-outputs"))
    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32", backend="torch"),
                              lora_dir=tmp_path_factory.mktemp("Lora"), weights_dir=tmp_path_factory.mktemp("weights"))
    demo = build_demo(manager)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                app_kwargs=api_app_kwargs(manager, None))
    yield f"http://127.0.0.1:{port}", manager, shapes(tmp_path_factory.mktemp("photos"))
    demo.close()
    if previous is None:
        os.environ.pop("STUDIO_OUTPUT_DIR", None)
    else:
        os.environ["STUDIO_OUTPUT_DIR"] = previous


def start(url: str, folder, name: str, **fields) -> requests.Response:
    photos = [("photos", (p.name, p.read_bytes(), "image/png")) for p in sorted(folder.glob("*.png"))]
    data = {**FIELDS, "name": name, **{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()}}
    return requests.post(f"{url}/api/train", files=photos, data=data, timeout=120)


def poll(url: str, job_id: str, until, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = requests.get(f"{url}/api/train/{job_id}", timeout=30).json()
        if until(state):
            return state
        time.sleep(0.2)
    raise AssertionError(f"the training never got there: {state}")


def ended(state: dict) -> bool:
    return state["state"] in ("done", "stopped", "failed")


def txt2img(url: str, prompt: str) -> np.ndarray:
    reply = requests.post(f"{url}/api/txt2img", json={"prompt": prompt, "num_inference_steps": 3, "width": 64,
                                                      "height": 64, "seed": 21}, timeout=300)
    assert reply.status_code == 200, reply.text
    png = Image.open(io.BytesIO(base64.b64decode(reply.json()["images"][0]["png_base64"])))
    return np.asarray(png.convert("RGB"))


def test_full_dreambooth_over_rest_writes_a_model_the_menu_lists(served):
    """The tiny model trains fully anywhere (engine.train.limits): the file lands in weights/, not the LoRA folder."""
    url, manager, folder = served
    reply = start(url, folder, "restfull", steps=2, sample_every=0, full=True)
    assert reply.status_code == 202, reply.text
    assert reply.json()["prompt"] == "photo of restfull object"
    state = poll(url, reply.json()["id"], ended)
    assert state["state"] == "done", state
    assert state["model"] == "restfull.safetensors" and state["lora"] is None
    assert (manager.weights_dir / "restfull.safetensors").is_file()
    assert not (manager.loras.folder / "restfull.safetensors").exists()
    assert any("restfull" in str(choice) for choice in manager.choices())


def test_rest_job_runs_to_done_with_samples_and_a_usable_lora(served):
    url, manager, folder = served
    reply = start(url, folder, "restdisc", steps=6, sample_every=3)
    assert reply.status_code == 202, reply.text
    assert reply.json()["steps"] == 6 and reply.json()["prompt"] == "<lora:restdisc:1> photo of restdisc object"
    state = poll(url, reply.json()["id"], ended)
    assert state["state"] == "done" and state["step"] == 6 and state["eta_s"] == 0
    assert state["lora"] == "restdisc.safetensors" and (manager.loras.folder / "restdisc.safetensors").is_file()
    assert [u.rsplit("/", 1)[1] for u in state["sample_urls"]] == [
        "step-000003-1.png", "step-000003-2.png", "step-000006-1.png", "step-000006-2.png"]
    sample = requests.get(state["sample_urls"][-1], timeout=30)
    assert sample.status_code == 200 and Image.open(io.BytesIO(sample.content)).size == (64, 64)
    assert not np.array_equal(txt2img(url, "<lora:restdisc:1> photo of restdisc object"),
                              txt2img(url, "photo of restdisc object"))


def test_rest_refusals_are_422_sentences_and_unknown_jobs_404(served):
    url, _, folder = served
    few = [("photos", (p.name, p.read_bytes(), "image/png")) for p in sorted(folder.glob("*.png"))[:2]]
    reply = requests.post(f"{url}/api/train", files=few, data={**FIELDS, "name": "x"}, timeout=60)
    assert reply.status_code == 422
    assert reply.json()["error"] == "Training needs at least 3 photos of the subject; got 2."
    reply = start(url, folder, "../up")
    assert reply.status_code == 422 and "path characters" in reply.json()["error"]
    assert requests.get(f"{url}/api/train/nosuchjob", timeout=30).status_code == 404
    assert requests.post(f"{url}/api/train/nosuchjob/stop", timeout=30).status_code == 404


def test_rest_stop_keeps_a_usable_lora_and_resume_finishes_it(served):
    from engine.train.jobs import trainings

    url, manager, folder = served
    reply = start(url, folder, "stopdisc", steps=400, sample_every=0, checkpoint_every=1000)
    job_id = reply.json()["id"]
    poll(url, job_id, lambda s: s["step"] >= 2)
    assert requests.post(f"{url}/api/train/{job_id}/stop", timeout=30).status_code == 200
    state = poll(url, job_id, ended)
    assert state["state"] == "stopped" and 2 <= state["step"] < 400
    assert txt2img(url, "<lora:stopdisc:1> photo of stopdisc object").shape == (64, 64, 3)
    job = trainings(manager).resume("stopdisc")  # what the tab's Resume does: on to the 400 steps
    assert [s for s, _ in job.losses] == list(range(1, state["step"] + 1))  # the curve so far comes back
    poll(url, job.id, lambda s: s["step"] >= state["step"] + 2)
    trainings(manager).stop(job.id)
    assert job.wait(60) and job.state == "stopped" and job.step > state["step"]
    assert "Resumed at step" in " ".join(job.notes)


def test_an_image_made_during_a_training_equals_one_made_without(served):
    url, _, folder = served
    before = txt2img(url, "a red apple on a table")
    reply = start(url, folder, "busydisc", steps=1000, sample_every=0, checkpoint_every=1000)
    job_id = reply.json()["id"]
    poll(url, job_id, lambda s: s["step"] >= 2)
    during = txt2img(url, "a red apple on a table")
    mid = requests.get(f"{url}/api/train/{job_id}", timeout=30).json()
    assert mid["state"] == "training"  # the image was made while the training ran, between two of its steps
    poll(url, job_id, lambda s: s["step"] > mid["step"])  # and the training went on afterwards
    requests.post(f"{url}/api/train/{job_id}/stop", timeout=30)
    poll(url, job_id, ended)
    np.testing.assert_array_equal(during, before)


def test_gradio_client_trains_and_answers_the_prompt_to_try(served):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    url, manager, folder = served
    client = Client(url + "/", verbose=False)
    photos = [handle_file(str(p)) for p in sorted(folder.glob("*.png"))]
    settings = dict(class_word="object", captions="", steps=4, rank=4, resolution=64, text_encoder=False, flip=True,
                    face_weighted=False, prior_preservation=False, checkpoint_every=2, keep_checkpoints=2,
                    sample_every=2, overwrite=True, full=False)
    plot, samples, said, prompt = client.predict(files=photos, name="clientdisc", api_name="/train", **settings)
    assert prompt == "<lora:clientdisc:1> photo of clientdisc object"
    assert said.startswith("Done: `clientdisc.safetensors` (4 steps).")
    assert len(samples) == 4 and (manager.loras.folder / "clientdisc.safetensors").is_file()
    assert [row[0] for row in plot["data"]] == [1, 2, 3, 4]  # the smoothed loss of each step
    with pytest.raises(AppError, match="Training needs at least 3 photos of the subject; got 2."):
        client.predict(files=photos[:2], name="few", api_name="/train", **settings)
