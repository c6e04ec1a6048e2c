"""The LoRA switch: jobs with the same set share the model, another set waits, and nobody waits for ever."""
from __future__ import annotations

import threading
import time

import pytest

from engine.loaders.switch import NOTHING, AdapterSwitch


class Model:
    """Records every switch and checks none happens while a job is inside."""

    def __init__(self):
        self.switch = AdapterSwitch(self.apply)
        self.applied: list = []
        self.inside: list = []
        self.peak: dict = {}
        self.lock = threading.Lock()
        self.fail_on = None

    def apply(self, wanted, payload):
        assert self.switch.inside == 0
        if wanted == self.fail_on:
            raise ValueError("does not fit")
        self.applied.append(wanted)

    def job(self, wanted, seconds=0.05):
        with self.switch.use(wanted) as held:
            assert held == wanted == self.switch.current
            with self.lock:
                self.inside.append(wanted)
                assert len(set(self.inside)) == 1, self.inside  # never two sets at once
                self.peak[wanted] = max(self.peak.get(wanted, 0), self.inside.count(wanted))
            time.sleep(seconds)
            with self.lock:
                self.inside.remove(wanted)


def run_all(model, sets):
    threads = [threading.Thread(target=model.job, args=(s,)) for s in sets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert not any(t.is_alive() for t in threads)


def test_same_sets_share_and_other_sets_wait():
    model = Model()
    run_all(model, [("a",), ("a",), NOTHING, ("b",), ("a",), NOTHING])
    assert model.peak.get(("a",), 0) >= 1
    assert not model.inside


def test_plain_jobs_run_together_without_any_switch():
    model = Model()
    run_all(model, [NOTHING] * 4)
    assert model.applied == []
    assert model.peak[NOTHING] > 1


def test_nested_use_in_one_thread_shares_the_outer_set():
    model = Model()
    with model.switch.use(("a",)):
        with model.switch.use(("b",)) as held:
            assert held == ("a",)
    assert model.switch.held() is None


def test_a_failed_switch_leaves_the_plain_model_and_frees_the_line():
    model = Model()
    model.fail_on = ("bad",)
    with pytest.raises(ValueError):
        with model.switch.use(("bad",)):
            pass
    assert model.switch.current == NOTHING and model.switch.inside == 0
    model.job(("a",), 0)
    assert model.applied == [("a",)]


def test_a_waiting_set_is_not_starved_by_newcomers():
    model = Model()
    order = []
    release = threading.Event()

    def long_plain():
        with model.switch.use(NOTHING):
            release.wait(5)
            order.append("plain-1")

    def lora():
        with model.switch.use(("a",)):
            order.append("lora")

    def late_plain():
        with model.switch.use(NOTHING):
            order.append("plain-2")

    first = threading.Thread(target=long_plain)
    first.start()
    time.sleep(0.05)
    waiting = threading.Thread(target=lora)
    waiting.start()
    time.sleep(0.05)
    late = threading.Thread(target=late_plain)
    late.start()
    time.sleep(0.05)
    release.set()
    for t in (first, waiting, late):
        t.join(timeout=5)
    assert order.index("lora") < order.index("plain-2")
