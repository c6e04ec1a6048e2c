"""ControlNet files: found by name, refused with one sentence when they are another family, a LoRA or damaged."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from engine.control.models import SD15_CONFIG, ControlNetFolder, check_family, model_hash


def _wide_controlnet(tmp_path, width: int):
    from diffusers import ControlNetModel

    config = json.loads((SD15_CONFIG / "config.json").read_text())
    config.update(block_out_channels=[32, 64], down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                  layers_per_block=1, cross_attention_dim=width, conditioning_embedding_out_channels=[16, 32])
    model = ControlNetModel.from_config(config)
    save_file(model.state_dict(), tmp_path / "wide.safetensors")
    model.save_pretrained(tmp_path / "wide_folder")
    return tmp_path / "wide.safetensors", tmp_path / "wide_folder"


def test_a_controlnet_for_another_text_width_is_refused_as_file_and_folder(tmp_path):
    single, folder = _wide_controlnet(tmp_path, 2048)
    with pytest.raises(ValueError, match="another model family"):
        check_family(single, 32)
    with pytest.raises(ValueError, match="another model family"):
        check_family(folder, 32)


def test_sdxl_keys_a_lora_a_checkpoint_and_a_damaged_file_are_refused(tmp_path):
    save_file({"controlnet_cond_embedding.conv_in.weight": torch.zeros(1), "add_embedding.linear_1.weight":
               torch.zeros(1)}, tmp_path / "xl.safetensors")
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 8)},
              tmp_path / "lora.safetensors")
    save_file({"conv_in.weight": torch.zeros(1)}, tmp_path / "unet.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    for name, message in (("xl", "SDXL"), ("lora", "is a LoRA"), ("unet", "not a ControlNet"),
                          ("broken", "damaged")):
        with pytest.raises(ValueError, match=message) as caught:
            check_family(tmp_path / f"{name}.safetensors", 32)
        assert "\n" not in str(caught.value)


def test_the_folder_lists_files_and_diffusers_folders_and_names_what_is_there(control_weights):
    folder = ControlNetFolder(control_weights / "ControlNet")
    assert folder.names() == ["tiny_canny", "tiny_single"]
    assert folder.source("tiny_single [0123abcd]").suffix == ".safetensors"
    assert folder.label("tiny_single") == f"tiny_single [{model_hash(folder.source('tiny_single'))}]"
    with pytest.raises(ValueError, match="tiny_canny, tiny_single"):
        folder.source("control_v11p_sd15_depth")
    with pytest.raises(ValueError, match="has no models yet"):
        ControlNetFolder(control_weights / "nothing").source("x")


def test_the_sd15_preset_is_the_full_size_controlnet():
    config = json.loads((SD15_CONFIG / "config.json").read_text())
    assert config["cross_attention_dim"] == 768 and config["block_out_channels"] == [320, 640, 1280, 1280]
