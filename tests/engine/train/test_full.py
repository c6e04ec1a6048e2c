"""Full DreamBooth on the tiny model: the single-file writer round-trips through the app's loader, the training
writes a model the menu lists and loads, the loaded model never changes, and no copy outlives the run."""
from __future__ import annotations

import gc
import importlib.machinery
import sys
import types
from types import SimpleNamespace

import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors import safe_open

from engine.pipeline.components import CONFIG_METADATA, TINY_CONFIG_DIR, build_tiny_pipeline, load_single_file
from engine.pipeline.manager import PipelineManager, RuntimeOptions
from engine.pipeline.models import model_choices
from engine.train import limits, optim
from engine.train.full import FULL_UNET_LR, train_full
from engine.train.single_file import save_single_file
from tests.engine.train.test_train import request, shapes

CPU = RuntimeOptions(device="cpu", dtype="float32", backend="torch")


def same(a: torch.nn.Module, b: torch.nn.Module, half: bool = False) -> bool:
    """Whether `a` holds `b`'s tensors (rounded to fp16 first when `half`)."""
    theirs = b.state_dict()
    return all(torch.equal(t, theirs[name].half().float() if half and t.is_floating_point() else theirs[name])
               for name, t in a.state_dict().items())


def test_single_file_round_trips_bit_equal_through_the_apps_loader(tmp_path):
    pipe = build_tiny_pipeline()
    path = save_single_file(tmp_path / "tiny-copy.safetensors", pipe.unet, pipe.vae, pipe.text_encoder,
                            {CONFIG_METADATA: "tiny"}, dtype=None)
    loaded = load_single_file(path)  # the tiny configs come from the file's metadata
    for name in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert ours.keys() == theirs.keys(), name
        assert all(torch.equal(ours[key], theirs[key]) for key in ours), name
    assert not list(tmp_path.glob(".*.tmp"))


def test_half_precision_file_holds_the_rounded_weights(tmp_path):
    pipe = build_tiny_pipeline()
    path = save_single_file(tmp_path / "half.safetensors", pipe.unet, pipe.vae, pipe.text_encoder, {})
    loaded = load_single_file(path, config_dir=TINY_CONFIG_DIR)
    assert torch.equal(loaded.unet.conv_in.weight, pipe.unet.conv_in.weight.half().float())
    with safe_open(str(path), framework="pt") as handle:
        assert handle.get_tensor("model.diffusion_model.input_blocks.0.0.weight").dtype == torch.float16


def changed(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """The share of `a`'s weights that differ from `b`'s rounded to fp16 (the file's precision)."""
    theirs = b.state_dict()
    moved = total = 0
    for name, t in a.state_dict().items():
        moved += int((t != theirs[name].half().float()).sum())
        total += t.numel()
    return moved / total


def unets() -> int:
    gc.collect()
    return sum(isinstance(o, UNet2DConditionModel) for o in gc.get_objects())


def test_full_dreambooth_writes_a_model_the_menu_lists_and_loads(tmp_path):
    manager = PipelineManager("tiny", CPU, weights_dir=tmp_path / "weights")
    base = manager.base()
    before = {name: t.clone() for name, t in base.unet.state_dict().items()}
    pointers = [p.data_ptr() for p in base.unet.parameters()]
    counted = unets()
    seen = []
    folder = shapes(tmp_path / "shapes", 3)
    result = train_full(manager, request(folder, "sksfull", steps=4, unet_lr=1e-3, sample_every=2, sample_steps=2,
                                         prior_preservation=True, class_images=2),
                        on_progress=seen.append, root=tmp_path / "runs")
    # the file, written atomically, listed at once
    assert result.model == tmp_path / "weights" / "sksfull.safetensors" and result.steps_done == 4
    assert [p.name for p in (tmp_path / "weights").iterdir()] == ["sksfull.safetensors"]
    assert "sksfull.safetensors" in model_choices(tmp_path / "weights") and "sksfull.safetensors" in manager.choices()
    assert [p.step for p in seen if not p.message] == [1, 2, 3, 4] and len(result.samples) == 4
    assert (result.run_dir / "loss.csv").read_text().count("\n") == 5
    # the loaded model never changed, and the trained copy is gone
    assert all(torch.equal(t, before[name]) for name, t in base.unet.state_dict().items())
    assert [p.data_ptr() for p in base.unet.parameters()] == pointers
    assert unets() == counted
    # it loads back through the model menu's path and differs from the base where it was trained
    trained = PipelineManager("sksfull.safetensors", CPU, weights_dir=tmp_path / "weights").base()
    assert changed(trained.unet, base.unet) > 0.5, changed(trained.unet, base.unet)
    assert same(trained.text_encoder, base.text_encoder, half=True) and same(trained.vae, base.vae, half=True)
    with safe_open(str(result.model), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["modelspec.trigger_phrase"] == "sksfull object" and meta["ss_steps"] == "4"
    assert meta["ss_optimizer"] == optim.TORCH_ADAMW and meta["ss_num_reg_images"] == "2"


def test_stop_writes_the_steps_done_and_names_are_checked(tmp_path):
    manager = PipelineManager("tiny", CPU, weights_dir=tmp_path / "weights")
    folder = shapes(tmp_path / "shapes", 3)
    stopping = SimpleNamespace(stopped=False)

    def stop_at_two(progress):
        stopping.stopped = stopping.stopped or progress.step == 2

    result = train_full(manager, request(folder, "halt", steps=6, unet_lr=FULL_UNET_LR), control=stopping,
                        on_progress=stop_at_two, root=tmp_path / "runs")
    assert result.stopped and result.steps_done == 2 and result.model.is_file()
    assert "Stopped at step 2 of 6" in result.notes[-1] and "prior preservation is recommended" in result.notes[0]
    with pytest.raises(ValueError, match="A model named halt.safetensors already exists"):
        train_full(manager, request(folder, "halt", steps=1, overwrite=False), root=tmp_path / "runs")
    with pytest.raises(ValueError, match="path characters"):
        train_full(manager, request(folder, "../up", steps=1), root=tmp_path / "runs")


def fake_gpu(monkeypatch, gigabytes: float) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda device: SimpleNamespace(total_memory=gigabytes * 2**30))


def bitsandbytes_module() -> types.ModuleType:
    """An importable `bitsandbytes` whose AdamW8bit is torch's AdamW under that name: only the choice is tested."""
    module = types.ModuleType("bitsandbytes")
    module.__spec__ = importlib.machinery.ModuleSpec("bitsandbytes", None)
    module.optim = SimpleNamespace(AdamW8bit=type("AdamW8bit", (torch.optim.AdamW,), {}))
    return module


def test_full_dreambooth_needs_a_big_cuda_gpu_but_the_tiny_model_trains_anywhere(monkeypatch):
    assert "needs a CUDA GPU with at least 16 GB" in limits.full_dreambooth_refusal("cpu", "file")
    assert limits.full_dreambooth_refusal("cpu", "tiny") is None
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # not installed
    fake_gpu(monkeypatch, 20)
    refusal = limits.full_dreambooth_refusal("cuda", "file")
    assert "at least 24 GB" in refusal and "bitsandbytes" in refusal and "has 20 GB" in refusal
    fake_gpu(monkeypatch, 24)
    assert limits.full_dreambooth_refusal("cuda", "file") is None
    monkeypatch.setitem(sys.modules, "bitsandbytes", bitsandbytes_module())
    fake_gpu(monkeypatch, 16)
    assert limits.full_dreambooth_refusal("cuda", "file") is None
    fake_gpu(monkeypatch, 12)
    assert "at least 16 GB of memory; this one has 12 GB" in limits.full_dreambooth_refusal("cuda", "file")


def test_eight_bit_adam_only_with_cuda_and_bitsandbytes(monkeypatch):
    groups = lambda: [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 1e-3}]  # noqa: E731
    monkeypatch.setitem(sys.modules, "bitsandbytes", bitsandbytes_module())
    optimizer, name, note = optim.make_optimizer(groups(), "cpu")  # bitsandbytes without CUDA
    assert type(optimizer) is torch.optim.AdamW and name == optim.TORCH_ADAMW and note is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    optimizer, name, note = optim.make_optimizer(groups(), "cuda")
    assert type(optimizer).__name__ == "AdamW8bit" and name == optim.EIGHT_BIT and note is None
    assert optim.eight_bit_available("cuda") and not optim.eight_bit_available("cpu")
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    optimizer, name, note = optim.make_optimizer(groups(), "cuda")
    assert type(optimizer) is torch.optim.AdamW and "pip install bitsandbytes" in note
