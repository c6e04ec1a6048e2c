"""Keep identity: a tiny random IP-Adapter full-face and CLIP image encoder, built offline and loaded through
diffusers' `load_ip_adapter` from a weights/ folder, exactly as the real files would be."""
import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from engine.faces import identity
from engine.faces.gender import GenderRequest, gender_swap
from engine.image.generate import text_to_image
from engine.image.request import ImageRequest
from engine.pipeline.manager import PipelineManager, RuntimeOptions

FAST = dict(direction="man", variants=1, num_inference_steps=3, size=64, sampler="Euler", seed=4)


def arr(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def write_tiny_adapter(folder, unet_config, width: int = 32) -> None:
    """`ip-adapter-full-face_sd15.safetensors` and `image_encoder/` in the shapes diffusers expects, random weights."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    # 1. image encoder: 224 px in 14 px patches gives the 256 + 1 tokens the full-face adapter is built for
    config = CLIPVisionConfig(hidden_size=width, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                              image_size=224, patch_size=14, projection_dim=width)
    CLIPVisionModelWithProjection(config).save_pretrained(folder / identity.ENCODER_FOLDER)
    # 2. the adapter: image projection (proj.0, proj.2, proj.3 = norm) and a to_k_ip/to_v_ip per cross-attention
    cross = unet_config["cross_attention_dim"]
    tensors = {"image_proj.proj.0.weight": torch.randn(width, width) * 0.2, "image_proj.proj.0.bias": torch.zeros(width),
               "image_proj.proj.2.weight": torch.randn(cross, width) * 0.2, "image_proj.proj.2.bias": torch.zeros(cross),
               "image_proj.proj.3.weight": torch.ones(cross), "image_proj.proj.3.bias": torch.zeros(cross)}
    channels = list(unet_config["block_out_channels"])
    key = 1
    for kind, count in (("down", unet_config["down_block_types"]), ("up", unet_config["up_block_types"]),
                        ("mid", ["mid"])):
        for block, name in enumerate(count):
            if kind != "mid" and "CrossAttn" not in name:
                continue
            hidden = {"down": channels[block] if kind == "down" else 0, "up": channels[::-1][block] if kind == "up"
                      else 0, "mid": channels[-1]}[kind]
            layers = unet_config["layers_per_block"] + (1 if kind == "up" else 0) if kind != "mid" else 1
            for _ in range(layers):
                tensors[f"ip_adapter.{key}.to_k_ip.weight"] = torch.randn(hidden, cross) * 0.5
                tensors[f"ip_adapter.{key}.to_v_ip.weight"] = torch.randn(hidden, cross) * 0.5
                key += 2
    save_file(tensors, str(folder / identity.ADAPTER_FILE))


@pytest.fixture(scope="module")
def adapter_manager(tmp_path_factory):
    """A tiny-model manager whose weights/ holds the tiny adapter."""
    from engine.pipeline.components import TINY_CONFIG_DIR

    folder = tmp_path_factory.mktemp("weights")
    import json

    write_tiny_adapter(folder, json.loads((TINY_CONFIG_DIR / "unet" / "config.json").read_text()))
    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"), weights_dir=folder)
    manager.base()
    return manager


@pytest.fixture(scope="module")
def bare_manager(tmp_path_factory):
    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"),
                              weights_dir=tmp_path_factory.mktemp("empty"))
    manager.base()
    return manager


def test_the_adapter_is_found_in_weights_and_loaded_once_over_shared_weights(adapter_manager):
    assert adapter_manager.identity_available()
    adapter = adapter_manager.identity_adapter()
    assert adapter_manager.identity_adapter() is adapter  # loaded once, then shared
    base = adapter_manager.base().unet
    assert adapter.unet is not base
    assert adapter.unet.conv_in.weight.data_ptr() == base.conv_in.weight.data_ptr()  # one copy of the weights
    assert adapter.unet.config.encoder_hid_dim_type == "ip_image_proj"
    assert base.config.encoder_hid_dim_type is None and base.encoder_hid_proj is None  # the shared UNet is untouched
    assert not any("IPAdapter" in type(p).__name__ for p in base.attn_processors.values())


def test_keep_identity_changes_the_face_and_off_is_pixel_identical_to_no_adapter(adapter_manager, bare_manager,
                                                                               astronaut):
    before = gender_swap(bare_manager, GenderRequest(**FAST), astronaut).variants[0]
    kept = gender_swap(adapter_manager, GenderRequest(keep_identity=0.6, **FAST), astronaut).variants[0]
    off = gender_swap(adapter_manager, GenderRequest(keep_identity=0, **FAST), astronaut).variants[0]
    assert np.array_equal(arr(off.image), arr(before.image))
    assert not np.array_equal(arr(kept.image), arr(before.image))
    assert "Keep identity: 0.6" in kept.parameters and "Keep identity" not in off.parameters
    # the other tabs still run on the untouched UNet, and give what they gave before
    req = ImageRequest(prompt="a face", num_inference_steps=2, width=64, height=64, seed=3)
    a = text_to_image(adapter_manager, req).images[0].image
    b = text_to_image(bare_manager, req).images[0].image
    assert np.array_equal(arr(a), arr(b))


def test_without_the_adapter_keep_identity_says_how_to_get_it(bare_manager, astronaut):
    assert not bare_manager.identity_available()
    with pytest.raises(ValueError, match="hf download h94/IP-Adapter"):
        gender_swap(bare_manager, GenderRequest(keep_identity=0.6, **FAST), astronaut)
    with pytest.raises(ValueError, match="Keep identity must be from 0"):
        gender_swap(bare_manager, GenderRequest(keep_identity=1.5, **FAST), astronaut)


def test_the_hub_layout_under_weights_is_found_too(tmp_path):
    folder = tmp_path / "IP-Adapter" / "models"
    (folder / identity.ENCODER_FOLDER).mkdir(parents=True)
    (folder / identity.ADAPTER_FILE).write_bytes(b"")
    (folder / identity.ENCODER_FOLDER / "config.json").write_text("{}")
    source = identity.find_adapter(tmp_path)
    assert source is not None and source.location == str(folder.resolve()) and source.subfolder == ""


@pytest.mark.weights
def test_keep_identity_brings_the_face_closer_with_real_weights(astronaut):
    """With SD 1.5 and the real full-face adapter: the identity distance with the adapter beats it without."""
    pytest.importorskip("dlib")
    manager = PipelineManager(os.environ["STUDIO_REAL_WEIGHTS"])
    if not manager.identity_available():
        pytest.skip(identity.MISSING)
    settings = dict(direction="man", variants=2, seed=1)
    plain = gender_swap(manager, GenderRequest(**settings), astronaut).variants
    kept = gender_swap(manager, GenderRequest(keep_identity=identity.DEFAULT_SCALE, **settings), astronaut).variants
    without = [v.identity for v in plain]
    with_adapter = [v.identity for v in kept]
    print(f"identity distance without the adapter {without}, with it {with_adapter}")
    assert None not in without + with_adapter
    assert np.mean(with_adapter) < np.mean(without)


def test_keep_identity_with_all_faces_in_a_timelapse(adapter_manager, astronaut, tmp_path):
    from PIL import Image

    from engine.faces.aging import AgingRequest, aging_timelapse
    from engine.faces.portrait import find_face_area

    pair = Image.new("RGB", (1024, 512))
    pair.paste(astronaut, (0, 0))
    pair.paste(astronaut, (512, 0))
    req = AgingRequest(ages=[20, 60], transition_frames=0, all_faces=True, keep_identity=0.6, num_inference_steps=3,
                       size=64, sampler="Euler", seed=2, fps=4)
    result = aging_timelapse(adapter_manager, req, pair, tmp_path)
    outside = np.asarray(find_face_area(pair, all_faces=True).mask) == 0
    for _, image in result.keyframes:
        assert np.array_equal(arr(image)[outside], arr(pair)[outside])
