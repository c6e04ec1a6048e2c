"""LoRA tags through the REST API: applied per request (also two at once), recorded, and refused with a sentence."""
from __future__ import annotations

import base64
import io
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from engine.files import pnginfo
from tests.engine import lora_files as lf


@pytest.fixture(scope="module")
def http(tmp_path_factory):
    import app
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    root = tmp_path_factory.mktemp("networks")
    pipe = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32")).base()
    lf.write_lora(root / "Lora", "ink", lf.kohya_lora(pipe, seed=0))
    lf.write_lora(root / "Lora", "chalk", lf.diffusers_lora(pipe, seed=1))
    args = app.parse_args(["--model", "tiny", "--dtype", "float32", "--device", "cpu", "--concurrency", "2",
                           "--lora-dir", str(root / "Lora"), "--embeddings-dir", str(root / "embeddings")])
    with TestClient(app.build_app(args)[1]) as client:
        yield client


def txt2img(http, prompt: str):
    return http.post("/api/txt2img", json={"prompt": prompt, "num_inference_steps": 2, "width": 64, "height": 64,
                                           "seed": 11})


def pixels(reply) -> np.ndarray:
    assert reply.status_code == 200, reply.text
    png = Image.open(io.BytesIO(base64.b64decode(reply.json()["images"][0]["png_base64"])))
    return np.asarray(png.convert("RGB")).astype(int)


def test_a_tag_applies_the_lora_and_is_recorded(http):
    reply = txt2img(http, "a boat <lora:ink:0.9>")
    text = reply.json()["images"][0]["parameters"]
    assert pnginfo.parse_parameters(text)["Lora hashes"].startswith("ink: ")
    assert not np.array_equal(pixels(reply), pixels(txt2img(http, "a boat")))


def test_an_unknown_lora_is_a_422_with_the_names_and_no_server_folder(http):
    reply = txt2img(http, "a boat <lora:oil:1>")
    assert reply.status_code == 422
    assert reply.json()["error"] == "No LoRA named 'oil' in the LoRA folder; the LoRAs there are: chalk, ink."


def test_two_requests_at_once_with_different_loras_equal_their_solo_runs(http):
    prompts = ["a boat <lora:ink:1>", "a boat <lora:chalk:1>"]
    solo = [pixels(txt2img(http, p)) for p in prompts]
    together: dict[int, np.ndarray] = {}
    start = threading.Barrier(2)

    def work(i):
        start.wait()
        together[i] = pixels(txt2img(http, prompts[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(np.array_equal(together[i], solo[i]) for i in range(2))
