"""POST /api/extras: an upscaled PNG with its recipe kept, and 422 with one sentence for bad input."""
import base64
import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from engine.files import pnginfo
from tests.engine.extras.conftest import compact_file


@pytest.fixture
def http(tiny_manager, tmp_path, monkeypatch):
    from fastapi import FastAPI

    from server import rest

    (tmp_path / "RealESRGAN").mkdir()
    compact_file(tmp_path / "RealESRGAN" / "RealESRGAN_x2plus.pth", scale=2)
    monkeypatch.setattr(tiny_manager, "weights_dir", tmp_path)
    api = FastAPI(routes=rest.router(tiny_manager).routes, exception_handlers=rest.exception_handlers())
    with TestClient(api) as client:
        yield client


def upload(parameters: str = "a boat\nSteps: 20, Seed: 3, Size: 48x32") -> dict:
    return {"image": ("boat.png", pnginfo.png_bytes(Image.new("RGB", (48, 32), (10, 90, 160)), parameters),
                      "image/png")}


def test_a_model_upscale_keeps_the_recipe_and_adds_the_postprocess_fields(http):
    reply = http.post("/api/extras", data={"upscale": "2", "upscaler": "R-ESRGAN 2x+"}, files=upload())
    assert reply.status_code == 200, reply.text
    body = reply.json()
    image = Image.open(io.BytesIO(base64.b64decode(body["png_base64"])))
    assert image.size == (96, 64) == (body["width"], body["height"])
    fields = pnginfo.parse_parameters(body["parameters"])
    assert fields["prompt"] == "a boat" and fields["Postprocess upscaler"] == "R-ESRGAN 2x+"


def test_an_exact_size_with_lanczos(http):
    reply = http.post("/api/extras", data={"width": "100", "height": "50"}, files=upload(""))
    assert reply.status_code == 200 and (reply.json()["width"], reply.json()["height"]) == (100, 50)


@pytest.mark.parametrize("form, message", [
    ({"upscale": "12"}, "from 1 to 8"),
    ({"upscaler": "/etc/passwd.pth"}, "Unknown upscaler"),
    ({"width": "100"}, "both width and height"),
    ({"width": "90000", "height": "90000"}, "megapixel cap"),
])
def test_bad_input_is_422_with_a_sentence(http, form, message):
    reply = http.post("/api/extras", data=form, files=upload())
    assert reply.status_code == 422 and message in reply.json()["error"]


def test_a_file_that_is_not_an_image_is_422(http):
    reply = http.post("/api/extras", files={"image": ("a.png", b"not an image at all", "image/png")})
    assert reply.status_code == 422 and "image" in reply.json()["error"]
