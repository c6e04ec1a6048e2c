"""With the OpenVINO back end, a LoRA request runs on PyTorch (same pixels as there) and plain requests go back."""
from __future__ import annotations

import numpy as np
import pytest

from engine.image.generate import text_to_image
from engine.image.request import ImageRequest
from engine.pipeline.manager import PipelineManager, RuntimeOptions
from tests.engine import lora_files as lf


@pytest.fixture(scope="module")
def managers(tmp_path_factory):
    pytest.importorskip("openvino")
    folder = tmp_path_factory.mktemp("Lora")
    mp = pytest.MonkeyPatch()
    mp.setenv("STUDIO_OPENVINO_CACHE", str(tmp_path_factory.mktemp("openvino-cache")))
    on_torch = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"), lora_dir=folder)
    lf.write_lora(folder, "ink", lf.kohya_lora(on_torch.base()))
    on_ov = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32", backend="openvino",
                                                   openvino_background=False), lora_dir=folder)
    on_ov.base()
    yield on_torch, on_ov
    mp.undo()


def image(manager, prompt):
    req = ImageRequest(prompt=prompt, num_inference_steps=2, width=64, height=64, seed=8)
    item = text_to_image(manager, req).images[0]
    return np.asarray(item.image).astype(int), item.parameters


def test_a_lora_request_falls_back_to_pytorch_and_plain_ones_return(managers):
    on_torch, on_ov = managers
    assert on_ov.backend == "openvino"
    plain_before, text = image(on_ov, "a tower")
    assert "Backend: OpenVINO" in text
    with_lora, text = image(on_ov, "a tower <lora:ink:1>")
    assert "Backend: PyTorch" in text and 'Lora hashes: "ink: ' in text
    assert np.array_equal(with_lora, image(on_torch, "a tower <lora:ink:1>")[0])
    plain_after, text = image(on_ov, "a tower")
    assert "Backend: OpenVINO" in text and np.array_equal(plain_after, plain_before)
