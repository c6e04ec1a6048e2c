"""Shared fixtures: the tiny model, a public-domain face photo, and a private output folder."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers share the cores: one math thread each, subprocesses too
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(config, items):
    """Real-weight tests run only where STUDIO_REAL_WEIGHTS names a checkpoint."""
    if os.environ.get("STUDIO_REAL_WEIGHTS"):
        return
    skip = pytest.mark.skip(reason="needs real weights: set STUDIO_REAL_WEIGHTS to a checkpoint path")
    for item in items:
        if "weights" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def output_dir(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.mktemp("outputs")
    monkeypatch.setenv("STUDIO_OUTPUT_DIR", str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_manager():
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"))
    manager.base()
    return manager


@pytest.fixture(scope="session")
def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


@pytest.fixture
def photo_64() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
