"""With the OpenVINO back end, a LoRA request runs on PyTorch (same pixels as there) and plain requests go back."""
from __future__ import annotations

import numpy as np
import pytest

from tests.engine import lora_files as lf


@pytest.fixture(scope="module")
def managers(tmp_path_factory):
    yield from lf.torch_and_openvino_managers(
        tmp_path_factory, lambda folder, on_torch: lf.write_lora(folder, "ink", lf.kohya_lora(on_torch.base())))


image = lf.image_and_parameters


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
