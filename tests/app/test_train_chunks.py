"""ZeroGPU: a training runs as several GPU calls of a few steps each, with the stand-in `spaces` package
(tests/app/fake_spaces.py). The calls add up to one uninterrupted training, and a refused call or Stop keeps a
usable LoRA that Resume finishes, again in calls."""
from __future__ import annotations

import gradio as gr
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from engine.jobs import gpu_time
from engine.train import chunks
from engine.train.jobs import earlier_losses
from engine.train.loop import train_lora
from engine.train.request import TrainRequest
from tabs import train as train_tab
from tabs.session import SessionControl
from tests.app import fake_spaces
from tests.engine.train.test_train import shapes

STEPS, PER_CALL, SIZE = 5, 2, 64  # three calls: 2, 2 and 1 steps


@pytest.fixture
def spaces(monkeypatch):
    """ZeroGPU on, through the stand-in package, with calls of PER_CALL steps."""
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    monkeypatch.setattr(gpu_time, "train_steps_per_call", lambda *args, **kwargs: PER_CALL)
    return fake_spaces.install(monkeypatch)


@pytest.fixture(scope="module")
def manager(tmp_path_factory):
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    return PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32", backend="torch"),
                           lora_dir=tmp_path_factory.mktemp("Lora"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return shapes(tmp_path_factory.mktemp("shapes"))


@pytest.fixture(scope="module")
def straight(manager, photos, tmp_path_factory):
    """The same training in one uninterrupted run: its LoRA tensors and losses."""
    req = TrainRequest(str(photos), "chunky", class_word="object", steps=STEPS, rank=4, alpha=4, resolution=SIZE,
                       sample_every=0, overwrite=True)
    result = train_lora(manager, req, root=tmp_path_factory.mktemp("straight"))
    return load_file(result.lora), result.losses


def tab(manager) -> dict:
    with gr.Blocks() as blocks:
        train_tab.build(manager)
    return {f.api_name: f.fn for f in blocks.fns.values() if f.api_name}


def train_args(photos, control, full=False) -> tuple:
    """The Train button's inputs: rank 4, 64 px, samples only at each call's end, checkpoints every 100 steps."""
    files = [str(p) for p in sorted(photos.glob("*.png"))]
    return (files, "chunky", "object", "", STEPS, 4, SIZE, False, False, False, False, 100, 3, 0, True, full, None,
            control)


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def lora_steps(manager) -> str:
    with safe_open(manager.loras.path("chunky"), "pt") as handle:
        return handle.metadata()["ss_steps"]


def asked(spaces) -> list[int]:
    return next(w for w in spaces.wrappings if w.fn.__name__ == "train_chunk").asked


def test_a_training_runs_as_several_gpu_calls_and_equals_one_uninterrupted_run(spaces, manager, photos, straight,
                                                                               output_dir):
    endpoints = tab(manager)
    assert {"train", "train_resume", "stop_train"} <= endpoints.keys()
    assert hasattr(endpoints["train"].gpu_chunks, "zerogpu") and hasattr(endpoints["train_resume"].gpu_chunks,
                                                                          "zerogpu")
    control = SessionControl()
    outputs = list(endpoints["train"](*train_args(photos, control)))
    curve, samples, text, prompt = outputs[-1]
    assert asked(spaces) == [gpu_time.train_seconds(2, SIZE, 0, 20)] * 2 + [gpu_time.train_seconds(1, SIZE, 0, 20)]
    assert all(gpu_time.MIN_SECONDS <= s <= gpu_time.ZEROGPU_MAX_SECONDS for s in asked(spaces))
    assert text.startswith("Done: `chunky.safetensors` (5 steps)") and "Resumed" not in text
    assert prompt == "<lora:chunky:1> photo of chunky object"
    assert list(curve["step"]) == [1, 2, 3, 4, 5] and len(outputs) > 1  # the curve grew across the calls
    assert [caption for _, caption in samples][1::2] == ["step 5 · alone", "step 4 · alone", "step 2 · alone"]
    assert control.progress.finished is not None and not control.progress.failed
    assert control.progress.fraction == 1.0
    tensors, losses = straight
    assert same(load_file(manager.loras.path("chunky")), tensors)
    assert [loss for _, loss in earlier_losses(output_dir / "train" / "chunky" / "loss.csv")] == losses
    assert spaces.tensors == []


def test_a_refused_call_keeps_the_lora_and_resume_finishes_it(spaces, manager, photos, straight):
    endpoints = tab(manager)
    spaces.refuse_after = 2  # the third call: the quota is spent
    *_, (curve, _, text, _) = endpoints["train"](*train_args(photos, SessionControl()))
    assert len(asked(spaces)) == 2 and len(curve) == 4
    assert "Stopped at step 4 of 5" in text and "exceeded your GPU quota" in text and "Resume" in text
    assert lora_steps(manager) == "4"  # a usable LoRA of the steps done

    spaces.refuse_after = None
    *_, (curve, _, text, _) = endpoints["train_resume"]("chunky", SessionControl())
    assert len(asked(spaces)) == 3 and asked(spaces)[-1] == gpu_time.train_seconds(1, SIZE, 0, 20)
    assert text.startswith("Done") and "Resumed at step 4 of 5." in text
    assert list(curve["step"]) == [1, 2, 3, 4, 5]  # the earlier steps too
    assert lora_steps(manager) == "5" and same(load_file(manager.loras.path("chunky")), straight[0])


def test_stop_ends_the_call_with_a_checkpoint_and_no_more_calls_start(spaces, manager, photos, straight):
    endpoints = tab(manager)
    control = SessionControl()

    def progress(fraction, desc=None):
        if (desc or "").startswith("Step 3 of 5"):  # in the second call
            control.stop()

    *_, (curve, _, text, _) = endpoints["train"](*train_args(photos, control), progress=progress)
    done = len(curve)  # 3, or 4 when the worker had begun its next step before the Stop reached it
    assert len(asked(spaces)) == 2 and done in (3, 4)
    assert f"Stopped at step {done} of 5" in text and lora_steps(manager) == str(done)
    *_, (_, _, text, _) = endpoints["train_resume"]("chunky", SessionControl())
    assert len(asked(spaces)) == 3 and text.startswith("Done")
    assert same(load_file(manager.loras.path("chunky")), straight[0])


def test_stop_before_the_first_call_starts_none(spaces, manager, photos, monkeypatch):
    endpoints = tab(manager)
    control = SessionControl()
    plan = chunks.plan_start

    def plan_then_stop(*args, **kwargs):
        call = plan(*args, **kwargs)
        control.stop()  # pressed while the photos were prepared
        return call

    monkeypatch.setattr(chunks, "plan_start", plan_then_stop)
    *_, (_, _, text, prompt) = endpoints["train"](*train_args(photos, control))
    assert spaces.calls == 0 and text.startswith("Stopped before the first GPU call") and prompt == ""


def test_full_dreambooth_and_a_missing_run_are_refused_before_any_gpu_call(spaces, manager, photos):
    endpoints = tab(manager)
    with pytest.raises(gr.Error, match="Full DreamBooth keeps no checkpoint"):
        list(endpoints["train"](*train_args(photos, SessionControl(), full=True)))
    with pytest.raises(gr.Error, match="no training named nobody"):
        list(endpoints["train_resume"]("nobody", SessionControl()))
    assert spaces.calls == 0


def test_a_call_plan_is_picklable_and_asks_for_its_own_steps(manager, photos, tmp_path):
    import pickle

    req = TrainRequest(str(photos), "planned", class_word="object", steps=700, resolution=512, sample_every=100,
                       sample_steps=20, overwrite=True)
    call = chunks.plan_start(manager, req, root=tmp_path)
    per_call = gpu_time.train_steps_per_call(512, 100, 20)
    assert call.starts and call.total == 700 and call.steps == call.per_call == per_call
    assert pickle.loads(pickle.dumps(call)).photos.photos[0].name == call.photos.photos[0].name
    last = call.next(700 - 10)
    assert not last.starts and last.steps == 10 and last.seconds() < call.seconds() <= gpu_time.TRAIN_TARGET_SECONDS
