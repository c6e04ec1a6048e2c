"""Every way a tab's run can end leaves the bar saying how, stopped, with Stop hidden: a refused input before the
engine runs or inside it, a real error, a busy answer, Stop while waiting for a slot, a call Gradio never ran,
and success. The handlers here are shaped like the tabs' (a generator that streams an engine job)."""
from __future__ import annotations

import re

import gradio as gr
import pytest

from engine.jobs.gate import BUSY, Gate
from tabs.running import ends_its_run, progress_html, run_clicked, run_ended, stop_pressed, stream, tick
from tabs.session import SessionControl, user_error, user_errors


def no_progress(*args, **kwargs):
    pass


def handler(job, gate=None, refuse: str | None = None):
    """A tab handler: maybe refuse its input first, then stream `job` and yield its result."""
    def run(image, control, progress=gr.Progress()):
        if refuse:
            raise user_error(refuse)
        for _, result in stream(job, control, no_progress, gate or Gate(1, 1)):
            if result is not None:
                yield result
    return ends_its_run(run)


def clicked() -> SessionControl:
    control = SessionControl()
    run_clicked(control)
    return control


def ended(control: SessionControl) -> str:
    """The bar's text once Gradio's `.then`/`.failure` ran; checks the timer stops and Stop hides."""
    timer, stop, html = run_ended(control)
    assert timer.active is False and stop.visible is False
    assert not control.running()
    assert html == progress_html(control)  # the text holds: nothing counts any more
    return re.sub(r"<[^>]+>", "", html)


def run_to_end(fn, control):
    with pytest.raises(gr.Error):
        list(fn("x.png", control))


def test_a_refusal_before_the_engine_runs_stays_on_the_bar():
    control = clicked()
    assert "Waiting for a free slot" in progress_html(control)
    run_to_end(handler(lambda *a: 1, refuse="Upload an image to start from."), control)
    assert ended(control) == "Failed: Upload an image to start from."
    assert "ds-failed" in progress_html(control)


def test_a_refusal_inside_the_engine_stays_on_the_bar():
    def job(on_step, ctl):
        raise ValueError("A latent walk needs at least 2 prompts, one per line.")

    control = clicked()
    run_to_end(handler(job), control)
    assert ended(control) == "Failed: A latent walk needs at least 2 prompts, one per line."


def test_a_real_error_says_so_without_its_details():
    def job(on_step, ctl):
        raise RuntimeError("CUDA out of memory at /secret/path")

    control = clicked()
    with pytest.raises(RuntimeError):
        list(handler(job)("x.png", control))
    text = ended(control)
    assert text.startswith("Failed: an error on the server (RuntimeError)") and "/secret" not in text


def test_a_busy_answer_stays_on_the_bar():
    control, gate = clicked(), Gate(limit=1, max_waiting=0)
    with gate.slot():  # another run holds the only slot and nobody may wait
        run_to_end(handler(lambda *a: 1, gate=gate), control)
    assert ended(control) == f"Failed: {BUSY}"


def test_stop_while_waiting_ends_the_run_at_once_and_it_never_starts():
    calls = []
    control = clicked()
    timer, stop, html = stop_pressed(control)
    assert timer.active is False and stop.visible is False and "Stopped before it started." in html
    assert list(handler(lambda *a: calls.append(1))("x.png", control)) == []  # its turn came: dropped
    assert calls == [] and ended(control) == "Stopped before it started."
    run_clicked(control)  # the next press runs
    assert list(handler(lambda *a: calls.append(1) or "done")("x.png", control)) == ["done"]
    assert calls == [1] and ended(control).startswith("Done in")


def test_stop_during_a_run_says_stopping_then_stopped():
    control = clicked()
    control.begin()
    control.update(0.5, "Image 1/1, step 5/10")
    assert tick(control)[1] is not None and control.running()  # Stop is left alone while the run goes
    stop_pressed(control)
    assert "Stopping · Image 1/1, step 5/10" in progress_html(control)
    control.end(failed=False)
    assert ended(control).startswith("Stopped after")


def test_a_call_gradio_never_ran_is_ended_too():
    control = clicked()  # the queue was full: the handler never ran, only `.failure` did
    assert ended(control).startswith("Failed: The app did not take the run")


def test_success_says_done_and_the_bar_stops():
    control = clicked()
    assert list(handler(lambda *a: "result")("x.png", control)) == ["result"]
    assert ended(control).startswith("Done in")


def test_without_a_session_the_error_still_reaches_gradio():
    @ends_its_run
    def plain(value):
        with user_errors():
            raise ValueError("Bad value.")

    with pytest.raises(gr.Error, match="Bad value."):
        plain(1)
