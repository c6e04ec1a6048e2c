"""With the OpenVINO back end, a ControlNet request runs its UNet on PyTorch (same pixels) and plain ones go back."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from engine.control.models import ControlNetCache
from engine.control.units import ControlUnit
from engine.image.generate import text_to_image
from engine.image.request import ImageRequest
from engine.pipeline.manager import PipelineManager, RuntimeOptions


@pytest.fixture(scope="module")
def on_ov(tmp_path_factory, control_weights):
    pytest.importorskip("openvino")
    mp = pytest.MonkeyPatch()
    mp.setenv("STUDIO_OPENVINO_CACHE", str(tmp_path_factory.mktemp("openvino-cache")))
    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32", backend="openvino",
                                                     openvino_background=False), weights_dir=control_weights)
    manager.base()
    yield manager
    mp.undo()


def image(manager, units=()):
    req = ImageRequest(prompt="a gate", num_inference_steps=2, width=64, height=64, seed=8, control_units=units)
    item = text_to_image(manager, req).images[0]
    return np.asarray(item.image).astype(int), item.parameters


def test_a_controlnet_request_falls_back_to_pytorch_and_plain_ones_return(on_ov, control_manager):
    drawing = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(drawing).line((0, 0, 64, 64), fill="white", width=4)
    units = (ControlUnit("none", "tiny_canny", drawing),)
    assert on_ov.backend == "openvino" and isinstance(on_ov.controlnets, ControlNetCache)
    plain_before, text = image(on_ov)
    assert "Backend: OpenVINO" in text
    controlled, text = image(on_ov, units)
    assert "Backend: PyTorch" in text and 'ControlNet 0: "Module: none, Model: tiny_canny [' in text
    assert np.array_equal(controlled, image(control_manager, units)[0])
    plain_after, text = image(on_ov)
    assert "Backend: OpenVINO" in text and np.array_equal(plain_after, plain_before)
