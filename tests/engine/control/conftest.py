"""A tiny random ControlNet built from the tiny UNet, saved as a diffusers folder and as a single .safetensors file."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def control_weights(tiny_manager, tmp_path_factory):
    """weights/ with ControlNet/tiny_canny (folder) and ControlNet/tiny_single.safetensors, strong random weights."""
    from diffusers import ControlNetModel
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    model = ControlNetModel.from_unet(tiny_manager.base().unet)
    with torch.no_grad():  # zero convolutions would make any ControlNet a no-op: give them weights
        for block in [*model.controlnet_down_blocks, model.controlnet_mid_block]:
            block.weight.normal_(0, 0.5)
    model.save_pretrained(root / "ControlNet" / "tiny_canny")
    save_file(model.state_dict(), root / "ControlNet" / "tiny_single.safetensors")
    return root


@pytest.fixture
def control_manager(tiny_manager, control_weights, monkeypatch):
    """The tiny manager looking for ControlNets in the test's weights folder."""
    from engine.control.models import ControlNetCache

    monkeypatch.setattr(tiny_manager, "controlnets", ControlNetCache(control_weights / "ControlNet"))
    return tiny_manager
