"""Fixtures the engine tests share."""
from __future__ import annotations

import pytest


@pytest.fixture
def without_taesd(tiny_manager, tmp_path, monkeypatch):
    """The shared tiny model with no TAESD anywhere: an empty weights/ and an empty Hugging Face cache."""
    from huggingface_hub import constants

    monkeypatch.setattr(tiny_manager, "_tiny_vae", None)
    monkeypatch.setattr(tiny_manager, "weights_dir", tmp_path / "weights")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tiny_manager
