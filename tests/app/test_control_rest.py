"""ControlNet through /api/txt2img: a unit changes the image and is recorded; bad units are a 422 with a sentence."""
from __future__ import annotations

import base64
import io
import threading

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from engine.files import pnginfo


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from diffusers import ControlNetModel
    from safetensors.torch import save_file

    import app
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    root = tmp_path_factory.mktemp("control")
    torch.manual_seed(1)
    model = ControlNetModel.from_unet(PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"))
                                      .base().unet)
    with torch.no_grad():
        for block in [*model.controlnet_down_blocks, model.controlnet_mid_block]:
            block.weight.normal_(0, 0.5)
    (root / "ControlNet").mkdir()
    save_file(model.state_dict(), root / "ControlNet" / "tiny_control.safetensors")
    args = app.parse_args(["--model", "tiny", "--dtype", "float32", "--device", "cpu", "--concurrency", "2",
                           "--backend", "torch", "--weights-dir", str(root)])
    drawing = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(drawing).rectangle((8, 20, 56, 44), outline="white", width=3)
    buffer = io.BytesIO()
    drawing.save(buffer, "PNG")
    with TestClient(app.build_app(args)[1]) as client:
        yield client, "tiny_control", base64.b64encode(buffer.getvalue()).decode()


def txt2img(http, units):
    return http.post("/api/txt2img", json={"prompt": "a bridge", "num_inference_steps": 2, "width": 64,
                                           "height": 64, "seed": 5, "controlnet": units})


def pixels(reply) -> np.ndarray:
    assert reply.status_code == 200, reply.text
    png = Image.open(io.BytesIO(base64.b64decode(reply.json()["images"][0]["png_base64"])))
    return np.asarray(png.convert("RGB")).astype(int)


def test_a_unit_changes_the_image_and_is_recorded_and_runs_beside_a_plain_request(setup):
    http, model, image = setup
    unit = {"module": "canny", "model": model, "image": f"data:image/png;base64,{image}", "weight": 1.2}
    solo_plain, solo_control = pixels(txt2img(http, [])), pixels(reply := txt2img(http, [unit]))
    assert np.abs(solo_plain - solo_control).mean() > 0.5
    fields = pnginfo.parse_parameters(reply.json()["images"][0]["parameters"])
    assert fields["ControlNet 0"].startswith("Module: canny, Model: tiny_control [")
    together: dict[int, np.ndarray] = {}
    start = threading.Barrier(2)

    def work(i):
        start.wait()
        together[i] = pixels(txt2img(http, [unit] if i else []))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert np.array_equal(together[0], solo_plain) and np.array_equal(together[1], solo_control)


@pytest.mark.parametrize("unit, message", [
    ({"module": "canny", "model": "nothing", "image": "AAAA"}, "No ControlNet model named 'nothing'"),
    ({"module": "canny", "model": "MODEL", "image": "not base64!"}, "is not valid base64"),
    ({"module": "canny", "model": "MODEL", "image": "IMAGE", "weight": 9}, "weight must be from 0 to 2"),
    ({"module": "canny", "model": "MODEL", "image": "IMAGE", "colour": 1}, "Unknown ControlNet unit field"),
    ({"module": "canny", "model": "MODEL"}, "has no control image"),
    ({"module": "canny", "model": "/etc/passwd", "image": "IMAGE"}, "not a path"),
    ({"module": "canny", "model": "../weights/x.safetensors", "image": "IMAGE"}, "not a path"),
])
def test_bad_units_are_a_422_with_one_sentence(setup, unit, message):
    http, model, image = setup
    unit = {key: {"MODEL": model, "IMAGE": image}.get(value, value) for key, value in unit.items()}
    reply = txt2img(http, [unit])
    assert reply.status_code == 422 and message in reply.json()["error"]
    assert "/tmp" not in reply.json()["error"]


def photo_upload() -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 140, 60)).save(buffer, "PNG")
    return {"image": ("photo.png", buffer.getvalue(), "image/png")}


def mask_upload() -> tuple:
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 48, 48), fill=255)
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    return ("mask.png", buffer.getvalue(), "image/png")


FORM = {"prompt": "a bridge", "num_inference_steps": "2", "seed": "5", "size": "64", "strength": "0.9"}


def test_img2img_takes_units_as_json_text_and_one_without_an_image_uses_the_upload(setup):
    import json

    http, model, image = setup
    plain = pixels(http.post("/api/img2img", data=FORM, files=photo_upload()))
    own = http.post("/api/img2img", data={**FORM, "controlnet": json.dumps([{"module": "canny", "model": model,
                                                                             "weight": 1.5}])},
                    files=photo_upload())
    given = http.post("/api/img2img", data={**FORM, "controlnet": json.dumps([{"module": "canny", "model": model,
                                                                               "image": image, "weight": 1.5}])},
                      files=photo_upload())
    assert np.abs(pixels(given) - plain).mean() > 0.5
    assert own.status_code == 200 and "ControlNet 0: " in own.json()["images"][0]["parameters"]


def test_inpaint_keeps_the_outside_and_takes_an_inpaint_only_unit(setup):
    import json

    http, model, image = setup
    files = {**photo_upload(), "mask": mask_upload()}
    plain = http.post("/api/inpaint", data=FORM, files=files)
    unit = [{"module": "inpaint_only", "model": model, "weight": 1.0}]
    controlled = http.post("/api/inpaint", data={**FORM, "controlnet": json.dumps(unit)}, files=files)
    for reply in (plain, controlled):
        out = pixels(reply)
        assert np.array_equal(out[:4], np.full_like(out[:4], (90, 140, 60)))  # beyond the blurred mask: untouched
    assert "Module: inpaint_only" in controlled.json()["images"][0]["parameters"]


@pytest.mark.parametrize("route, text, message", [
    ("/api/img2img", "{not json", "controlnet must be a JSON list"),
    ("/api/img2img", '[{"module": "canny", "model": "MODEL", "image": "not base64!"}]', "is not valid base64"),
    ("/api/inpaint", '[{"module": "canny", "model": "nothing"}]', "No ControlNet model named 'nothing'"),
    ("/api/inpaint", '[' + ', '.join(['{"module": "canny", "model": "MODEL"}'] * 4) + ']', "At most 3"),
])
def test_bad_form_units_are_a_422_with_one_sentence(setup, route, text, message):
    http, model, _ = setup
    files = photo_upload() if route == "/api/img2img" else {**photo_upload(), "mask": mask_upload()}
    reply = http.post(route, data={**FORM, "controlnet": text.replace("MODEL", model)}, files=files)
    assert reply.status_code == 422 and message in reply.json()["error"], reply.text
