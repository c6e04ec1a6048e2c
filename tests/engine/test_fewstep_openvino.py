"""With OpenVINO, the few-step LoRA alone runs on a converted model of its own with the LoRA fused in."""
from __future__ import annotations

import numpy as np
import pytest

from engine.image.generate import text_to_image
from engine.image.request import ImageRequest
from tests.engine import lora_files as lf
from tests.engine.test_backends import OV_TOLERANCE, PIXEL_TOLERANCE, one_call_against_torch


@pytest.fixture(scope="module")
def managers(tmp_path_factory):
    def loras(folder, on_torch):
        lf.write_lora(folder, "lcm-lora-sdv1-5", lf.kohya_lora(on_torch.base(), text=False, scale=0.3))
        lf.write_lora(folder, "ink", lf.kohya_lora(on_torch.base(), seed=5))
    yield from lf.torch_and_openvino_managers(tmp_path_factory, loras)


image = lf.image_and_parameters


def test_a_fewstep_request_runs_on_its_fused_openvino_model_and_plain_ones_return(managers):
    on_torch, on_ov = managers
    runner = on_ov._openvino
    plain_before, text = image(on_ov, "a tower")
    assert "Backend: OpenVINO" in text
    conversions = runner.conversions
    fast, text = image(on_ov, "a tower <lora:lcm-lora-sdv1-5:1>")
    assert "Backend: OpenVINO" in text and 'Lora hashes: "lcm-lora-sdv1-5: ' in text
    assert runner.conversions == conversions + 1
    assert any(path.name.startswith(runner.folder.name + "-lora-") for path in runner.folder.parent.iterdir())
    reference, _ = image(on_torch, "a tower <lora:lcm-lora-sdv1-5:1>")
    # the fused model matches PyTorch's LoRA layers as closely as the plain model matches the plain UNet
    # (a LoRA far larger than any trained one makes this tiny UNet chaotic: at scale 2, fusing in PyTorch fp32
    # alone moves one call by 30%; at 0.3 it is 2e-6)
    _, error = one_call_against_torch(on_ov, runner)
    assert runner._last_variant is not None and error < OV_TOLERANCE
    assert np.abs(fast - reference).max() <= PIXEL_TOLERANCE
    assert np.abs(fast - plain_before).mean() > 5  # the LoRA is in the model
    plain_after, text = image(on_ov, "a tower")
    assert "Backend: OpenVINO" in text and np.array_equal(plain_after, plain_before)
    again, _ = image(on_ov, "a tower <lora:lcm-lora-sdv1-5:1>")
    assert np.array_equal(again, fast) and runner.conversions == conversions + 1  # from the disk cache
    assert runner.fewstep_switch_s() is not None and runner.fewstep_switch_s() >= 0


def test_the_shared_unet_keeps_its_weights_after_fusing(managers):
    _, on_ov = managers
    image(on_ov, "a tower <lora:lcm-lora-sdv1-5:1>")
    unet = on_ov.base().unet
    assert not any(getattr(module, "merged", False) for module in unet.modules())


def test_the_fewstep_lora_with_another_one_falls_back_to_pytorch(managers):
    on_torch, on_ov = managers
    both, text = image(on_ov, "a tower <lora:lcm-lora-sdv1-5:1> <lora:ink:1>")
    assert "Backend: PyTorch" in text
    assert np.array_equal(both, image(on_torch, "a tower <lora:lcm-lora-sdv1-5:1> <lora:ink:1>")[0])


def test_fast_on_openvino_runs_the_fewstep_model_and_on_pytorch_reuses_features(managers):
    from engine.backends import fast_choice, fastpath

    on_torch, on_ov = managers
    assert fast_choice.offer(on_ov).mode == "fewstep" and fast_choice.offer(on_torch).mode == "reuse"
    req = ImageRequest(prompt="a tower", num_inference_steps=20, width=64, height=64, seed=8, fast=True)
    item = text_to_image(on_ov, req).images[0]
    assert "Backend: OpenVINO" in item.parameters and "Steps: 4" in item.parameters
    assert "Sampler: LCM" in item.parameters and 'Lora hashes: "lcm-lora-sdv1-5: ' in item.parameters
    assert isinstance(on_torch.pipeline("txt2img", "Euler", fast=True).unet, fastpath.FeatureCacheUNet)
    assert "Fast: Few-step mode on OpenVINO" in fast_choice.label(fast_choice.offer(on_ov), "openvino")


def test_the_fast_label_states_a_measured_speedup_only(monkeypatch):
    from engine.backends import fast_choice

    monkeypatch.setattr(fast_choice, "_seconds", {})
    offer = fast_choice.FastOffer("reuse")
    assert fast_choice.speedup("torch") is None and "once measured" in fast_choice.label(offer, "torch")
    fast_choice.record("torch", False, 6.0, 512, 512, 2)
    fast_choice.record("torch", True, 2.0, 512, 512, 1)
    assert fast_choice.speedup("torch") == pytest.approx(1.5)
    assert "1.5× faster measured here" in fast_choice.label(offer, "torch")
    assert fast_choice.speedup("openvino") is None
    assert "not offered" in fast_choice.label(fast_choice.FastOffer(None, reason="x"), "openvino")
