"""Fast is offered only where it is faster, says what it does on the running back end, and states the measured
speed-up."""
from types import SimpleNamespace

import pytest

from engine.backends import fast_choice
from tabs.common import fast_offer


@pytest.fixture(autouse=True)
def fresh_times():
    fast_choice._seconds.clear()
    yield
    fast_choice._seconds.clear()


def on(backend: str, loras=()):
    folder = SimpleNamespace(names=lambda: list(loras))
    return SimpleNamespace(backend=backend, loras=folder)


def measure(backend: str, plain: float, fast: float):
    for _ in range(3):
        fast_choice.record(backend, False, plain, 512, 512, 1)
        fast_choice.record(backend, True, fast, 512, 512, 1)


def test_on_openvino_without_a_few_step_lora_fast_is_greyed_out_with_the_reason():
    offer = fast_offer(on("openvino"))
    assert offer["interactive"] is False and offer["value"] is False
    assert "not offered on OpenVINO" in offer["label"] and "LCM" in offer["info"]


def test_on_openvino_with_one_fast_is_few_step_mode_but_not_in_the_video_tabs():
    offer = fast_offer(on("openvino", ["lcm-lora-sdv1-5"]))
    assert offer["interactive"] is True and "Few-step mode on OpenVINO" in offer["label"]
    video = fast_offer(on("openvino", ["lcm-lora-sdv1-5"]), fewstep_ok=False)
    assert video["interactive"] is False and "untick Fast" in video["info"]


def test_on_pytorch_the_label_waits_for_a_measurement_then_states_it():
    assert "speed-up shown once measured here" in fast_offer(on("torch"))["label"]
    measure("torch", 10.0, 5.5)
    offer = fast_offer(on("torch"))
    assert offer["interactive"] is True and "1.8× faster measured here" in offer["label"]


def test_a_measured_slowdown_withdraws_it():
    measure("torch", 10.0, 12.5)
    offer = fast_offer(on("torch"))
    assert offer["interactive"] is False and "0.80×, slower" in offer["label"]
