import base64
import io
import threading
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from engine.files import pnginfo

EXAMPLE = "presets/examples/astronaut.jpg"


@pytest.fixture(scope="module")
def built():
    import app

    return app.build_app(app.parse_args(["--model", "tiny", "--dtype", "float32", "--device", "cpu"]))


@pytest.fixture(scope="module")
def http(built):
    with TestClient(built[1]) as client:
        yield client


def example_bytes():
    from pathlib import Path

    return (Path(__file__).resolve().parents[2] / EXAMPLE).read_bytes()


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_docs_list_the_endpoints(http):
    assert http.get("/docs").status_code == 200
    paths = http.get("/openapi.json").json()["paths"]
    assert {"/api/txt2img", "/api/aging", "/api/gender-swap"} <= set(paths)


def test_txt2img_returns_pngs_with_parameters(http):
    reply = http.post("/api/txt2img", json={"prompt": "a red apple", "num_inference_steps": 2, "width": 64,
                                             "height": 64, "seed": 5, "batch_count": 2})
    assert reply.status_code == 200
    images = reply.json()["images"]
    assert [i["seed"] for i in images] == [5, 6]
    png = decode(images[0]["png_base64"])
    assert png.size == (64, 64) and "Seed: 5" in pnginfo.read_parameters(png)


def test_aging_returns_stills_grid_and_a_video_url(http):
    reply = http.post("/api/aging", files={"image": ("face.jpg", example_bytes(), "image/jpeg")},
                      data={"ages": "20, 60", "num_inference_steps": 2, "size": 64, "seed": 1, "fps": 4})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [i["age"] for i in body["images"]] == [20, 60] and body["grid_png_base64"]
    assert decode(body["images"][0]["png_base64"]).size == (512, 512)
    video = http.get(body["video_url"].replace("http://testserver", ""))
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"


def test_gender_swap_returns_variants_of_the_input_size(http):
    reply = http.post("/api/gender-swap", files={"image": ("face.jpg", example_bytes(), "image/jpeg")},
                      data={"direction": "woman", "variants": 2, "num_inference_steps": 2, "size": 64, "seed": 7})
    assert reply.status_code == 200, reply.text
    images = reply.json()["images"]
    assert [i["seed"] for i in images] == [7, 8] and decode(images[1]["png_base64"]).size == (512, 512)


def test_face_edits_keep_every_pixel_outside_the_masks_and_take_all_faces(http):
    import numpy as np

    from engine.faces.portrait import find_face_area

    photo = Image.open(io.BytesIO(example_bytes())).convert("RGB")
    pair = Image.new("RGB", (1024, 512))
    pair.paste(photo, (0, 0))
    pair.paste(photo.resize((400, 400)), (560, 56))
    buffer = io.BytesIO()
    pair.save(buffer, format="PNG")
    reply = http.post("/api/gender-swap", files={"image": ("pair.png", buffer.getvalue(), "image/png")},
                      data={"direction": "woman", "num_inference_steps": 2, "size": 64, "seed": 7, "face": "all"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert "All 2 faces were regenerated." in body["notes"]
    outside = np.asarray(find_face_area(pair, all_faces=True).mask) == 0
    result = np.asarray(decode(body["images"][0]["png_base64"]).convert("RGB"))
    assert np.array_equal(result[outside], np.asarray(pair)[outside])
    reply = http.post("/api/gender-swap", files={"image": ("pair.png", buffer.getvalue(), "image/png")},
                      data={"direction": "woman", "num_inference_steps": 2, "size": 64, "face": "2"})
    assert reply.status_code == 200 and "face 2 was used" in " ".join(reply.json()["notes"])


def truncated_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, format="PNG")
    return buffer.getvalue()[:60]


def huge_png_header() -> bytes:
    """A 5000-pixel-wide PNG cut after its header: the size check must fire before any decoding."""
    buffer = io.BytesIO()
    Image.new("L", (5000, 2)).save(buffer, format="PNG")
    return buffer.getvalue()[:60]


@pytest.mark.parametrize("endpoint, files, data, message", [
    ("/api/gender-swap", {"image": ("a.txt", b"hello", "text/plain")}, {"direction": "man"}, "not an image"),
    ("/api/gender-swap", {"image": ("a.png", truncated_png(), "image/png")}, {"direction": "man"}, "damaged"),
    ("/api/gender-swap", {"image": ("a.png", huge_png_header(), "image/png")}, {"direction": "man"}, "4096"),
    ("/api/gender-swap", {"image": ("f.jpg", example_bytes(), "image/jpeg")}, {"direction": "cat"}, "Unknown direction"),
    ("/api/gender-swap", {"image": ("f.jpg", example_bytes(), "image/jpeg")}, {"direction": "man", "face": 3},
     "only 1 face"),
    ("/api/gender-swap", {"image": ("f.jpg", example_bytes(), "image/jpeg")}, {"direction": "man", "face": "0"},
     "numbered from 1"),
    ("/api/gender-swap", {"image": ("f.jpg", example_bytes(), "image/jpeg")}, {"direction": "man", "face": "any"},
     "or 'all'"),
    ("/api/gender-swap", {"image": ("f.jpg", example_bytes(), "image/jpeg")},
     {"direction": "man", "keep_identity": 2}, "Keep identity must be from 0"),
    ("/api/aging", {"image": ("f.jpg", example_bytes(), "image/jpeg")}, {"ages": "60, 20"}, "must rise"),
    ("/api/aging", {"image": ("f.jpg", example_bytes(), "image/jpeg")}, {"ages": "40"}, "at least two ages"),
    ("/api/aging", {"image": ("f.jpg", example_bytes(), "image/jpeg")}, {"ages": "20, 140"}, "from 1 to 100"),
    ("/api/aging", {"image": ("f.jpg", example_bytes(), "image/jpeg")}, {"ages": "20, 40", "num_inference_steps": 0},
     "Steps must be"),
])
def test_bad_input_gets_a_4xx_with_a_sentence(http, endpoint, files, data, message):
    reply = http.post(endpoint, files=files, data=data)
    assert 400 <= reply.status_code < 500
    assert message in reply.json()["error"]


def test_no_face_gets_a_sentence(http):
    buffer = io.BytesIO()
    Image.new("RGB", (300, 300), (90, 140, 200)).save(buffer, format="PNG")
    reply = http.post("/api/gender-swap", files={"image": ("sky.png", buffer.getvalue(), "image/png")},
                      data={"direction": "man"})
    assert reply.status_code == 422 and "No face" in reply.json()["error"]


def test_json_mistakes_get_a_sentence(http):
    reply = http.post("/api/txt2img", json={"prompt": "a", "num_inference_steps": 0})
    assert reply.status_code == 422 and reply.json()["error"].startswith("num_inference_steps")
    reply = http.post("/api/txt2img", json={"prompt": "a", "sampler": "Nope", "width": 64, "height": 64})
    assert reply.status_code == 422 and "Unknown sampler" in reply.json()["error"]


def test_uploads_are_size_capped(http, monkeypatch):
    from server import rest

    monkeypatch.setattr(rest, "MAX_UPLOAD_BYTES", 1000)
    reply = http.post("/api/gender-swap", files={"image": ("f.jpg", example_bytes(), "image/jpeg")},
                      data={"direction": "man"})
    assert reply.status_code == 413 and "MB" in reply.json()["error"]


def test_files_are_served_only_from_the_output_folder(http):
    assert http.get("/api/files/../../README.md").status_code == 404
    assert http.get("/api/files/%2e%2e/%2e%2e/etc/passwd").status_code == 404


def test_busy_answer_when_every_slot_and_the_line_are_taken(http):
    from engine.jobs.gate import Gate

    manager = route_manager(http, "/api/txt2img")
    original, manager.gate = manager.gate, Gate(limit=1, max_waiting=0)
    holding, release = threading.Event(), threading.Event()

    def hold():
        with manager.gate.slot():
            holding.set()
            release.wait(10)

    worker = threading.Thread(target=hold)
    worker.start()
    try:
        holding.wait(5)
        reply = http.post("/api/txt2img", json={"prompt": "a", "num_inference_steps": 2, "width": 64, "height": 64})
        assert reply.status_code == 503 and "Busy" in reply.json()["error"]
    finally:
        release.set()
        worker.join()
        manager.gate = original


def route_manager(http, path: str):
    """The manager a route serves, found in its closure."""
    route = next(r for r in http.app.routes if getattr(r, "path", "") == path)
    return next(c.cell_contents for c in route.endpoint.__closure__ if hasattr(c.cell_contents, "gate"))


def test_auth_protects_the_api():
    import app

    _, api = app.build_app(app.parse_args(["--model", "tiny", "--dtype", "float32", "--auth", "ann:secret"]))
    with TestClient(api) as client:
        body = {"prompt": "a", "num_inference_steps": 1, "width": 64, "height": 64}
        assert client.post("/api/txt2img", json=body).status_code == 401
        assert client.post("/api/txt2img", json=body, auth=("ann", "wrong")).status_code == 401
        assert client.post("/api/txt2img", json=body, auth=("ann", "secret")).status_code == 200


def test_share_needs_auth_unless_told_otherwise(capsys):
    import app

    assert app.main(["--share", "--model", "tiny"]) == 2
    assert "--auth" in capsys.readouterr().err
    args = app.parse_args(["--share", "--share-without-auth"])
    assert app.credentials(args) is None


def test_the_wrong_method_gets_405_and_an_unknown_endpoint_404(http):
    got = http.get("/api/txt2img")
    assert got.status_code == 405 and got.headers["allow"] == "POST" and "POST" in got.json()["error"]
    assert http.get("/api/gender-swap").status_code == 405
    assert http.get("/api/nothing-here").status_code == 404


def test_txt2img_without_a_size_takes_the_models_own(http):
    got = http.post("/api/txt2img", json={"prompt": "a red apple", "num_inference_steps": 2, "seed": 1})
    assert got.status_code == 200, got.text
    assert decode(got.json()["images"][0]["png_base64"]).size == (128, 128)  # the tiny model's default


def test_an_age_range_bomb_gets_a_short_sentence_at_once(http):
    start = time.perf_counter()
    reply = http.post("/api/aging", files={"image": ("f.jpg", example_bytes(), "image/jpeg")},
                      data={"ages": "1-10000000/1"})
    assert time.perf_counter() - start < 2
    assert reply.status_code == 422 and len(reply.content) < 300
    assert reply.json()["error"] == "Every age must be from 1 to 100; got the range '1-10000000/1'."


def test_prompts_over_the_cap_get_a_422_that_states_the_cap(http):
    body = {"num_inference_steps": 1, "width": 64, "height": 64}
    start = time.perf_counter()
    reply = http.post("/api/txt2img", json={**body, "prompt": "a" * 100_000})
    assert time.perf_counter() - start < 2
    assert reply.status_code == 422 and reply.json()["error"] == (
        "The prompt is 100,000 characters long; the cap is 1,000 CLIP tokens (at most 32,000 characters). Shorten it.")
    reply = http.post("/api/txt2img", json={**body, "prompt": "a cat", "negative_prompt": "blurry " * 1001})
    assert reply.status_code == 422
    assert reply.json()["error"] == "The negative prompt is 1,001 CLIP tokens long; the cap is 1,000 tokens. Shorten it."
    assert http.post("/api/txt2img", json={**body, "prompt": "cat " * 1000}).status_code == 200


def test_the_prompt_cap_is_a_flag_and_a_studio_variable(monkeypatch):
    import app

    assert app.manager_from(app.parse_args(["--model", "tiny"])).options.max_prompt_tokens == 1000
    assert app.manager_from(app.parse_args(["--model", "tiny", "--max-prompt-tokens", "80"])).options.max_prompt_tokens == 80
    monkeypatch.setenv("STUDIO_MAX_PROMPT_TOKENS", "120")
    assert app.manager_from(app.parse_args(["--model", "tiny"])).options.max_prompt_tokens == 120
