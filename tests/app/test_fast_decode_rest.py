"""Fast decode over REST: the fast_decode field of /api/txt2img, and a 422 sentence when TAESD is absent."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from engine.files import pnginfo
from tests.engine.test_tiny_vae import tiny_taesd

BODY = {"prompt": "a red apple", "num_inference_steps": 2, "width": 64, "height": 64, "seed": 5}


@pytest.fixture
def http(tiny_manager):
    from fastapi import FastAPI

    from server import rest

    api = FastAPI(routes=rest.router(tiny_manager).routes, exception_handlers=rest.exception_handlers())
    with TestClient(api) as client:
        yield client


def test_fast_decode_field_decodes_with_taesd(http, tiny_manager, monkeypatch):
    monkeypatch.setattr(tiny_manager, "_tiny_vae", tiny_taesd())
    reply = http.post("/api/txt2img", json={**BODY, "fast_decode": True})
    assert reply.status_code == 200, reply.text
    assert pnginfo.parse_parameters(reply.json()["images"][0]["parameters"])["VAE Decoder"] == "TAESD"


def test_fast_decode_without_taesd_is_a_422_sentence(http, tiny_manager, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(tiny_manager, "_tiny_vae", None)
    monkeypatch.setattr(tiny_manager, "weights_dir", tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    reply = http.post("/api/txt2img", json={**BODY, "fast_decode": True})
    assert reply.status_code == 422 and reply.json()["error"].startswith("Fast decode needs TAESD")
