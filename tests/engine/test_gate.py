import threading

import pytest

from engine.jobs.gate import Busy, Gate


def test_callers_beyond_slots_and_line_are_told_busy_at_once():
    gate = Gate(limit=1, max_waiting=1)
    running, waiting_started, release = threading.Event(), threading.Event(), threading.Event()
    order = []

    def first():
        with gate.slot():
            running.set()
            release.wait(5)
            order.append("first")

    def second():
        waiting_started.set()
        with gate.slot():
            order.append("second")

    a, b = threading.Thread(target=first), threading.Thread(target=second)
    a.start()
    running.wait(5)
    b.start()
    waiting_started.wait(5)
    for _ in range(100):
        if gate._inside == 2:
            break
        threading.Event().wait(0.01)
    with pytest.raises(Busy, match="Busy, try again in a moment"):
        with gate.slot():
            pass
    release.set()
    a.join()
    b.join()
    assert order == ["first", "second"]
    with gate.slot():
        pass


def test_bad_limits_are_refused():
    with pytest.raises(ValueError):
        Gate(limit=0)
