"""Fast is offered only where it is faster, and its label states the speed-up measured in this process."""
from types import SimpleNamespace

import pytest

from engine.backends import step_times
from engine.image.generate import text_to_image
from engine.image.request import ImageRequest
from tabs.common import fast_offer


@pytest.fixture(autouse=True)
def fresh_times():
    step_times.clear()
    yield
    step_times.clear()


def on(backend: str):
    return SimpleNamespace(backend=backend)


def test_on_openvino_fast_is_greyed_out_with_the_reason():
    offer = fast_offer(on("openvino"))
    assert offer["interactive"] is False and offer["value"] is False
    assert "not offered on the OpenVINO back end" in offer["label"] and "slower" in offer["info"]


def test_on_pytorch_the_label_waits_for_a_measurement_then_states_it():
    assert "shows after a run" in fast_offer(on("torch"))["label"]
    for _ in range(4):
        step_times.record("torch", 4096, 1.0)
        step_times.record("fast", 4096, 0.55)
    offer = fast_offer(on("torch"))
    assert offer["interactive"] is True and "measured here: 1.8× faster" in offer["label"]


def test_a_measured_slowdown_withdraws_it():
    for _ in range(4):
        step_times.record("torch", 4096, 1.0)
        step_times.record("fast", 4096, 1.25)
    offer = fast_offer(on("torch"))
    assert offer["interactive"] is False and "0.80×, slower" in offer["label"]


def test_real_runs_record_the_steps_of_both_kinds(tiny_manager):
    common = dict(prompt="a red apple", num_inference_steps=6, width=64, height=64, seed=1)
    text_to_image(tiny_manager, ImageRequest(**common))
    assert step_times.fast_speedup("torch") is None  # no Fast steps yet
    text_to_image(tiny_manager, ImageRequest(**common, fast=True))
    assert step_times.fast_speedup("torch", min_steps=5) > 0
