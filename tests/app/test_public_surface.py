"""What the server shows any client beyond the tabs: upload sentences over the Gradio API, /config, Gradio's own
routes and its analytics."""
from __future__ import annotations

import base64
import json
import struct
import zlib

import httpx
import pytest
from gradio_client import handle_file

from engine.pipeline.models import REPO_ROOT

I2I = dict(prompt="x", negative_prompt="", strength=0.5, num_inference_steps=2, guidance_scale=7, size=64, seed=1,
           batch_count=1, sampler="Euler")
# every image input a client can fill, by endpoint and parameter name
IMAGE_INPUTS = [("/img2img", "image", I2I), ("/aging", "photo", {"ages": "20, 40"}),
                ("/gender_swap", "photo", {}), ("/animate", "init_image", {"negative_prompt": "", "video": None})]
GRADIO_WORDS = ("Could not preprocess", "component", "/tmp/", "DecompressionBomb")


def blank_png(side: int) -> bytes:
    """A valid black 1-bit PNG of side x side pixels in a few kB: a decompression bomb for PIL beyond ~13400 px."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row = zlib.compressobj(9), b"\x00" * (1 + (side + 7) // 8)  # filter byte, then the packed bits
    pixels = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def refusal(client, endpoint: str, name: str, extra: dict, path) -> str:
    with pytest.raises(Exception) as err:
        client.predict(**{name: handle_file(str(path))}, **extra, api_name=endpoint)
    return str(err.value)


@pytest.mark.parametrize("endpoint, name, extra", IMAGE_INPUTS)
def test_a_file_that_is_not_an_image_gets_the_apps_sentence_over_the_gradio_api(client, tmp_path, endpoint, name,
                                                                                   extra):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    message = refusal(client, endpoint, name, extra, notes)
    assert "notes.txt is not an image Diffusion Studio can read" in message
    assert not any(word in message for word in GRADIO_WORDS), message


@pytest.mark.parametrize("endpoint, name, extra", IMAGE_INPUTS[:2])
@pytest.mark.parametrize("side", [13000, 20000])  # 20000² is over PIL's decompression-bomb limit, 13000² is not
def test_a_huge_png_gets_the_apps_too_large_sentence_over_the_gradio_api(client, tmp_path, endpoint, name, extra,
                                                                        side):
    huge = tmp_path / "huge.png"
    huge.write_bytes(blank_png(side))
    assert huge.stat().st_size < 100_000
    message = refusal(client, endpoint, name, extra, huge)
    assert "too large" in message and "4096 pixels per side" in message
    assert not any(word in message for word in GRADIO_WORDS), message


def call(server: str, endpoint: str, data: list) -> str:
    """A raw Gradio API call, as a client without gradio_client makes it; returns the event stream's text."""
    joined = httpx.post(f"{server}gradio_api/call{endpoint}", json={"data": data}, timeout=30)
    assert joined.status_code == 200, joined.text
    return httpx.get(f"{server}gradio_api/call{endpoint}/{joined.json()['event_id']}", timeout=120).text


@pytest.mark.parametrize("content, message", [(b"hello", "not an image Diffusion Studio can read"),
                                              (blank_png(20000), "too large")])
def test_an_image_sent_inline_as_a_data_url_is_checked_too(server, content, message):
    inline = {"url": "data:image/png;base64," + base64.b64encode(content).decode()}
    reply = call(server, "/img2img", [inline, *I2I.values(), False, False, [], -1, 0, False])
    assert "event: error" in reply and message in reply, reply
    assert "Could not preprocess" not in reply


def test_config_shows_no_server_folder_and_analytics_are_off(server):
    config = httpx.get(f"{server}config").json()
    assert config["analytics_enabled"] is False
    text = json.dumps(config)
    assert "LoRAs in `weights/Lora`" in text and "embeddings in `weights/embeddings`" in text
    assert str(REPO_ROOT) not in text


def test_a_folder_outside_the_app_is_named_by_its_flag(tmp_path):
    from tabs.extras_common import shown_folder

    assert shown_folder(tmp_path / "loras", "--lora-dir") == "the --lora-dir folder"
    assert shown_folder(REPO_ROOT / "weights" / "Lora", "--lora-dir") == "`weights/Lora`"


def test_analytics_flag_and_variable_turn_them_on(monkeypatch):
    import app

    monkeypatch.delenv("STUDIO_ANALYTICS", raising=False)
    assert app.parse_args([]).analytics is False
    assert app.parse_args(["--analytics"]).analytics is True
    monkeypatch.setenv("STUDIO_ANALYTICS", "1")
    assert app.parse_args([]).analytics is True


def test_gradio_sends_analytics_only_when_asked(monkeypatch):
    from gradio import analytics

    import app
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    sent = []
    monkeypatch.delenv("GRADIO_ANALYTICS_ENABLED", raising=False)
    monkeypatch.setattr(analytics, "_do_analytics_request", lambda topic, data: sent.append(topic))
    monkeypatch.setattr(analytics, "version_check", lambda: None)  # no network here
    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"))
    assert app.build_demo(manager).config["analytics_enabled"] is False and sent == []
    assert app.build_demo(manager, analytics=True).config["analytics_enabled"] is True
    assert any("analytics" in topic for topic in sent)


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The whole FastAPI app (REST, UI and middleware) as `uvicorn app:app` serves it, outputs in a temp folder."""
    import os

    from fastapi.testclient import TestClient

    import app

    outputs = tmp_path_factory.mktemp("surface-outputs")
    before, os.environ["STUDIO_OUTPUT_DIR"] = os.environ.get("STUDIO_OUTPUT_DIR"), str(outputs)
    try:
        demo, served = app.build_app(app.parse_args(["--model", "tiny", "--dtype", "float32", "--device", "cpu"]))
        with TestClient(served) as http:
            yield http, outputs, demo
    finally:
        if before is None:
            os.environ.pop("STUDIO_OUTPUT_DIR", None)
        else:
            os.environ["STUDIO_OUTPUT_DIR"] = before


@pytest.mark.parametrize("route", ["/gradio_api/file={}", "/gradio_api/file/{}"])
@pytest.mark.parametrize("target", [REPO_ROOT / "app.py", REPO_ROOT / "no-such-file.py", "app.py"])
def test_the_file_route_refuses_without_echoing_a_path(full, route, target):
    http, *_ = full
    reply = http.get(route.format(str(target).lstrip("/") if "file/" in route else target))
    assert reply.status_code == 403
    assert reply.json() == {"detail": "File not allowed."}


def test_the_file_route_still_serves_the_output_folder(full):
    http, outputs, _ = full
    made = outputs / "made.txt"
    made.write_text("a result")
    reply = http.get(f"/gradio_api/file={made}")
    assert reply.status_code == 200 and reply.text == "a result"


def asgi_get(app, path: str, seconds: float = 5) -> tuple[int, bytes]:
    """GET `path` straight from the ASGI app, giving up after `seconds` (an event stream would never end)."""
    import asyncio
    import threading

    sent: list[dict] = []

    async def receive():
        await asyncio.sleep(seconds)
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": [],
             "client": ("127.0.0.1", 1), "server": ("testserver", 80)}
    # in a thread of its own: a Playwright test earlier in the session leaves an event loop in this one
    worker = threading.Thread(target=lambda: asyncio.run(asyncio.wait_for(app(scope, receive, send), seconds)))
    worker.start()
    worker.join()
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_the_dev_reload_route_is_off_outside_reload_mode(full, monkeypatch):
    http, *_ = full
    monkeypatch.delenv("GRADIO_WATCH_DIRS", raising=False)
    status, _ = asgi_get(http.app, "/gradio_api/dev/reload")
    assert status == 404
    assert http.get("/config").json()["dev_mode"] is False


def test_gradio_keeps_the_state_of_a_capped_number_of_sessions(full, monkeypatch):
    import app

    *_, demo = full
    assert demo.state_holder.capacity == 200  # Gradio's own default, 10000, is about 10 GB for this app
    monkeypatch.setenv("STUDIO_MAX_SESSIONS", "30")
    assert app.parse_args([]).max_sessions == 30
    assert app.main(["--model", "tiny", "--max-sessions", "0"]) == 2
