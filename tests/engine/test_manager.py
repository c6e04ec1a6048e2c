import time

import pytest
import torch

from engine.pipeline.manager import PipelineManager, RuntimeOptions
from engine.pipeline.models import DEFAULT_HUB_MODEL, TINY, model_choices, resolve_model


def test_task_pipelines_share_one_set_of_weights(tiny_manager):
    pipes = [tiny_manager.pipeline(task, "Euler") for task in ("txt2img", "img2img", "inpaint")]
    for name in ("unet", "vae", "text_encoder"):
        modules = [getattr(p, name) for p in pipes]
        assert all(m is modules[0] for m in modules)
        first = [t.data_ptr() for t in modules[0].parameters()]
        for m in modules[1:]:
            assert [t.data_ptr() for t in m.parameters()] == first


def test_each_request_gets_its_own_scheduler(tiny_manager):
    a = tiny_manager.pipeline("txt2img", "Euler a")
    b = tiny_manager.pipeline("txt2img", "DDIM")
    assert a.scheduler is not b.scheduler
    assert type(a.scheduler).__name__ == "EulerAncestralDiscreteScheduler"
    assert type(b.scheduler).__name__ == "DDIMScheduler"
    assert type(tiny_manager.base().scheduler).__name__ == "PNDMScheduler"


def test_switching_tabs_never_reloads(tiny_manager):
    base = tiny_manager.base()
    start = time.perf_counter()
    for task in ("txt2img", "img2img", "inpaint") * 5:
        tiny_manager.pipeline(task, "DPM++ 2M Karras")
    assert tiny_manager.base() is base
    assert time.perf_counter() - start < 5  # generous: only catches a reload, not a speed target


def test_switching_models_frees_the_old_one():
    manager = PipelineManager(TINY, RuntimeOptions(device="cpu", dtype="float32"))
    manager.base()
    manager.select(DEFAULT_HUB_MODEL)
    assert manager._base is None and manager.source is None
    manager.select(TINY)
    assert manager.base() is not None


def test_float32_flag_really_gives_float32():
    manager = PipelineManager(TINY, RuntimeOptions(device="cpu", dtype="float32"))
    assert all(p.dtype == torch.float32 for p in manager.base().unet.parameters())


def test_prompt_embeddings_are_cached(tiny_manager):
    a = tiny_manager.encode("a cat", "dog")
    assert tiny_manager.encode("a cat", "dog") is a
    assert tiny_manager.encode("a cat", "") is not a


def test_model_menu_lists_local_files_hub_default_and_tiny(tmp_path):
    (tmp_path / "realisticVisionV60B1_v20Novae.safetensors").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    assert model_choices(tmp_path) == ["realisticVisionV60B1_v20Novae.safetensors", DEFAULT_HUB_MODEL, TINY]
    manager = PipelineManager(weights_dir=tmp_path)
    assert manager.model_name == "realisticVisionV60B1_v20Novae.safetensors"


def test_unknown_paths_and_non_checkpoints_are_refused(tmp_path):
    with pytest.raises(ValueError, match="was not found"):
        resolve_model("weights/missing.safetensors", tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a .safetensors or .ckpt"):
        resolve_model("notes.txt", tmp_path)
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="model_index.json"):
        resolve_model(str(tmp_path / "folder"), tmp_path)
    assert resolve_model("someone/some-model", tmp_path).kind == "hub"


def test_corrupt_checkpoint_gives_a_sentence_and_the_manager_stays_usable(tmp_path):
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 100)
    manager = PipelineManager("broken.safetensors", RuntimeOptions(device="cpu", dtype="float32"),
                              weights_dir=tmp_path)
    with pytest.raises(ValueError) as err:
        manager.base()
    assert "\n" not in str(err.value)
    assert manager.status().startswith("⚠️")
    manager.select(TINY)
    assert manager.base() is not None


def test_hub_model_without_network_says_why_and_how_to_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    manager = PipelineManager("nobody/not-a-cached-model", RuntimeOptions(device="cpu", dtype="float32"))
    with pytest.raises(ValueError, match="weights/ or choose the tiny model"):
        manager.base()


def test_status_tells_the_tiny_model_makes_noise(tiny_manager):
    assert "noise" in tiny_manager.status()


def test_preload_loads_in_the_background_and_reports_a_failure_in_status(caplog):
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"))
    manager.preload().join(timeout=120)
    assert manager._base is not None
    missing = PipelineManager("weights/missing.safetensors", RuntimeOptions(device="cpu"))
    missing.preload().join(timeout=60)
    assert "was not found" in missing.status()
    assert [r.getMessage().count("\n") for r in caplog.records if "could not be loaded" in r.getMessage()] == [0]
