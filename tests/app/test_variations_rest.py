"""Variations over REST: variation_seed and variation_strength on /api/txt2img and /api/img2img."""
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


def png_of(image: dict) -> bytes:
    return Image.open(io.BytesIO(base64.b64decode(image["png_base64"]))).tobytes()


def test_txt2img_variations_are_made_reported_and_saved(http):
    varied = http.post("/api/txt2img", json={**BODY, "variation_seed": 8, "variation_strength": 0.25,
                                             "batch_count": 2}).json()["images"]
    plain = http.post("/api/txt2img", json=BODY).json()["images"][0]
    assert [i["variation_seed"] for i in varied] == [8, 9] and plain["variation_seed"] is None
    fields = pnginfo.parse_parameters(varied[0]["parameters"])
    assert (fields["Variation seed"], fields["Variation seed strength"]) == ("8", "0.25")
    assert png_of(varied[0]) != png_of(plain)


def test_img2img_takes_a_photo_and_the_variation_fields(http, photo_64):
    buffer = io.BytesIO()
    photo_64.save(buffer, "PNG")
    form = {"prompt": "a red apple", "num_inference_steps": "2", "seed": "5", "size": "64", "strength": "0.8"}
    files = {"image": ("photo.png", buffer.getvalue(), "image/png")}
    plain = http.post("/api/img2img", data=form, files=files)
    varied = http.post("/api/img2img", data={**form, "variation_seed": "3", "variation_strength": "0.5"}, files=files)
    assert plain.status_code == 200 and varied.status_code == 200, varied.text
    image = varied.json()["images"][0]
    assert image["variation_seed"] == 3 and "Variation seed: 3, Variation seed strength: 0.5" in image["parameters"]
    assert png_of(image) != png_of(plain.json()["images"][0])


def test_a_strength_outside_0_to_1_is_a_422_sentence(http, photo_64):
    reply = http.post("/api/txt2img", json={**BODY, "variation_strength": 1.5})
    assert reply.status_code == 422 and reply.json()["error"].startswith("variation_strength:")
    reply = http.post("/api/txt2img", json={**BODY, "variation_strength": 0.2, "variation_seed": -4})
    assert reply.status_code == 422 and reply.json()["error"].startswith("Variation seed must be -1")
    files = {"image": ("photo.png", b"not an image", "image/png")}
    reply = http.post("/api/img2img", data={"variation_strength": "-0.1"}, files=files)
    assert reply.status_code == 422 and reply.json()["error"].startswith("variation_strength:")
