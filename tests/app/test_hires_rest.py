"""Hires. fix over REST: the optional hires_* fields of /api/txt2img."""
import base64
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from engine.files import pnginfo


@pytest.fixture(scope="module")
def http(tiny_manager):
    """The REST routes alone, as app.py mounts them, over the shared tiny model (no UI to build)."""
    from fastapi import FastAPI

    from server import rest

    api = FastAPI(routes=rest.router(tiny_manager).routes, exception_handlers=rest.exception_handlers())
    with TestClient(api) as client:
        yield client


BODY = {"prompt": "a red apple", "num_inference_steps": 2, "width": 64, "height": 64, "seed": 5}


def test_txt2img_with_hires_fields(http):
    reply = http.post("/api/txt2img", json={**BODY, "hires_scale": 1.5, "hires_upscaler": "Lanczos",
                                             "hires_steps": 1, "hires_strength": 0.4})
    assert reply.status_code == 200, reply.text
    image = reply.json()["images"][0]
    png = Image.open(io.BytesIO(base64.b64decode(image["png_base64"])))
    assert png.size == (96, 96)
    fields = pnginfo.parse_parameters(image["parameters"])
    assert (fields["Hires upscale"], fields["Hires steps"], fields["Denoising strength"]) == ("1.5", "1", "0.4")


def test_hires_mistakes_get_a_4xx_sentence(http):
    reply = http.post("/api/txt2img", json={**BODY, "hires_scale": 2, "hires_upscaler": "SwinIR"})
    assert reply.status_code == 422 and reply.json()["error"].startswith("Unknown Hires upscaler 'SwinIR'")
    reply = http.post("/api/txt2img", json={**BODY, "hires_scale": 0.5})
    assert reply.status_code == 422 and reply.json()["error"].startswith("hires_scale:")
    reply = http.post("/api/txt2img", json={**BODY, "width": 1536, "hires_scale": 2})
    assert reply.status_code == 422 and "2048 px limit" in reply.json()["error"]
    assert http.post("/api/txt2img", json=BODY).status_code == 200  # and it keeps serving
