"""Face restoration over REST: the restore_faces and visibility fields of the face endpoints."""
from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient

from engine.extras.restorers import load_restorer
from engine.files import pnginfo
from tests.engine.test_restore import tiny_restorer_weights

FORM = {"direction": "man", "variants": 1, "num_inference_steps": 2, "size": 64, "seed": 3}


@pytest.fixture
def http(tiny_manager, tmp_path, monkeypatch):
    from fastapi import FastAPI

    from server import rest

    monkeypatch.setattr(tiny_manager, "weights_dir", tiny_restorer_weights(tmp_path))
    api = FastAPI(routes=rest.router(tiny_manager).routes, exception_handlers=rest.exception_handlers())
    with TestClient(api) as client:
        yield client
    load_restorer.cache_clear()


def photo(astronaut) -> tuple[str, bytes, str]:
    buffer = io.BytesIO()
    astronaut.save(buffer, format="PNG")
    return "face.png", buffer.getvalue(), "image/png"


def test_gender_swap_restore_fields_are_written_to_png_info(http, astronaut):
    reply = http.post("/api/gender-swap", files={"image": photo(astronaut)},
                      data={**FORM, "restore_faces": "RestoreFormer", "visibility": 0.5})
    assert reply.status_code == 200, reply.text
    fields = pnginfo.parse_parameters(reply.json()["images"][0]["parameters"])
    assert fields["Face restoration"] == "RestoreFormer" and fields["Face restoration visibility"] == "0.5"


@pytest.mark.parametrize(("extra", "words"), [({"restore_faces": "CodeFormer"}, "No face restorer named"),
                                              ({"restore_faces": "tiny-upscaler"}, "not a face restorer"),
                                              ({"restore_faces": "RestoreFormer", "visibility": 3}, "between 0 and 1")])
def test_bad_restore_fields_are_a_422_sentence(http, astronaut, extra, words):
    reply = http.post("/api/gender-swap", files={"image": photo(astronaut)}, data={**FORM, **extra})
    assert reply.status_code == 422 and words in reply.json()["error"]


def test_aging_refuses_an_unknown_restorer(http, astronaut):
    reply = http.post("/api/aging", files={"image": photo(astronaut)},
                      data={"ages": "20,60", "num_inference_steps": 2, "size": 64, "restore_faces": "GFPGAN"})
    assert reply.status_code == 422 and "No face restorer named 'GFPGAN'" in reply.json()["error"]
