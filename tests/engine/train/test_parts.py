"""The training's small parts: loss weights, checkpoints, the shared twin, and the model and disk checks."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from engine.train import checkpoints, limits
from engine.train.data import batch_indices, caption_prompt
from engine.train.loss import face_weight_map, min_snr_weights, weighted_loss
from engine.train.shared import same_storage, share_module


def test_min_snr_caps_the_easy_steps():
    alphas = torch.tensor([0.99, 0.5, 0.01])  # SNR 99, 1, ~0.0101
    weights = min_snr_weights(torch.tensor([0, 1, 2]), alphas, gamma=5.0)
    assert torch.allclose(weights, torch.tensor([5 / 99, 1.0, 1.0]), atol=1e-5)
    v = min_snr_weights(torch.tensor([0, 1]), alphas, gamma=5.0, prediction_type="v_prediction")
    assert torch.allclose(v, torch.tensor([5 / 100, 0.5]), atol=1e-5)


def test_face_weight_map_and_weighted_loss():
    maps = face_weight_map([(16, 16, 32, 32), None], pixels=64, latent=8, weight=3.0)
    assert maps.shape == (2, 1, 8, 8) and maps[0, 0, 2:4, 2:4].eq(3).all() and maps[0].sum() == 64 + 2 * 4
    assert maps[1].eq(1).all()
    prediction, target = torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 8, 8)
    target[0, :, 2:4, 2:4] = 1  # all the error is in the face
    plain = weighted_loss(prediction, target)
    weighted = weighted_loss(prediction, target, pixel_weights=maps[:1])
    assert plain == pytest.approx(4 / 64) and weighted == pytest.approx(3 * 4 / (64 + 8))
    assert weighted_loss(prediction, target, torch.tensor([0.5])) == pytest.approx(2 / 64)


def test_batches_shuffle_each_epoch_and_repeat_from_the_seed():
    first = [batch_indices(s, 1, 4, seed=3)[0] for s in range(8)]
    assert sorted(first[:4]) == [0, 1, 2, 3] and sorted(first[4:]) == [0, 1, 2, 3] and first[:4] != first[4:]
    assert batch_indices(5, 1, 4, seed=3) == [first[5]] and batch_indices(1, 2, 4, seed=3) == first[2:4]


def test_captions_carry_the_trigger_word():
    assert caption_prompt("sks", "dog") == "photo of sks dog"
    assert caption_prompt("sks", "dog", "on a sofa") == "photo of sks dog, on a sofa"
    assert caption_prompt("sks", "dog", "sks running") == "sks running"


def test_checkpoints_keep_the_last_k_and_leave_no_temporary_file(tmp_path):
    for step in (2, 4, 6, 8):
        checkpoints.save_checkpoint(tmp_path, step, {"step": step, "w": torch.full((2,), float(step))}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000006.pt", "step-000008.pt"]
    assert checkpoints.last_checkpoint(tmp_path)["step"] == 8
    assert checkpoints.last_checkpoint(tmp_path / "none") is None


def test_the_twin_shares_every_tensor_and_takes_lora_layers_alone():
    from engine.pipeline.components import build_tiny_pipeline
    from engine.train.network import UNET_TARGETS, add_lora

    pipe = build_tiny_pipeline()
    for model in (pipe.unet, pipe.text_encoder):
        twin = share_module(model)
        assert same_storage(twin, model) and same_storage(model, twin)
    twin = share_module(pipe.unet)
    params = add_lora(twin, 4, 4, UNET_TARGETS, seed=0)
    assert params and all(p.dtype == torch.float32 and p.requires_grad for p in params)
    assert not any("lora_" in name for name, _ in pipe.unet.named_parameters())


def test_sdxl_and_sd2_are_refused_and_full_dreambooth_needs_a_big_gpu(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="SDXL"):
        limits.check_family(SimpleNamespace(cross_attention_dim=2048, addition_embed_type="text_time"))
    with pytest.raises(ValueError, match="Stable Diffusion 2"):
        limits.check_family(SimpleNamespace(cross_attention_dim=1024))
    limits.check_family(SimpleNamespace(cross_attention_dim=768))
    assert "needs a CUDA GPU with at least 16 GB" in limits.full_dreambooth_refusal("cpu")
    monkeypatch.setattr(limits.shutil, "disk_usage", lambda _: SimpleNamespace(free=10 * 2**20))
    with pytest.raises(ValueError, match="Not enough disk for the checkpoints"):
        limits.check_disk(tmp_path, lora_parameters=3_000_000, keep=3)
