"""The pieces around a training job: uploads gathered, captions parsed, the time said, the curve smoothed, and a
slot given way at the gate."""
from __future__ import annotations

import io
import threading
import time
import zipfile

import pytest

from engine.image.request import RunControl
from engine.jobs.gate import Gate
from engine.train.estimate import estimate
from engine.train.jobs import Turn
from engine.train.loss import smooth_curve
from engine.train.uploads import apply_captions, caption_lines, gather_uploads, parse_captions


def test_uploads_become_a_folder_or_the_one_zip(tmp_path):
    folder = gather_uploads([("a.png", b"1"), ("sub/b.png", b"2")], tmp_path / "f")
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "b.png"]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.png", b"1")
    assert gather_uploads([("set.zip", archive.getvalue())], tmp_path / "z").name == "photos.zip"
    with pytest.raises(ValueError, match="set.zip is a zip: give one zip of the photos, or the photos"):
        gather_uploads([("set.zip", archive.getvalue()), ("a.png", b"1")], tmp_path / "m")
    with pytest.raises(ValueError, match="Two files are named A.png"):
        gather_uploads([("a.png", b"1"), ("A.png", b"2")], tmp_path / "d")
    with pytest.raises(ValueError, match="Drop 3 to 50 photos"):
        gather_uploads([], tmp_path / "e")


def test_captions_are_parsed_by_photo_name_and_unknown_names_refused():
    assert parse_captions("a.png: red hat\n\nb.png:\nc.png : by the sea ") == {"a.png": "red hat",
                                                                               "c.png": "by the sea"}
    with pytest.raises(ValueError, match="Caption line 2 should read 'photo name: caption'"):
        parse_captions("a.png: x\njust words")
    assert caption_lines(["a.png", "b.png"], {"a.png": "hat"}) == "a.png: hat\nb.png:"

    class Photo:
        def __init__(self, name):
            self.name, self.caption = name, "from txt"

    photos = apply_captions([Photo("a.png"), Photo("b.png")], {"a.png": "hat"})
    assert [p.caption for p in photos] == ["hat", "from txt"]
    with pytest.raises(ValueError, match="a caption for z.png, but no photo of that name"):
        apply_captions(photos, {"z.png": "x"})


def test_the_estimate_says_hours_on_a_cpu_and_what_a_gpu_takes():
    said = estimate(400, 256, "cpu")
    assert said.startswith("400 steps at 256 px on this CPU: about 3.6 hours")
    assert "A full-size training on a CPU takes hours" in said
    assert "a T4-class GPU would take about 2 min, ZeroGPU about 25 s" in said
    assert estimate(400, 512, "cpu", prior_preservation=True).startswith("400 steps at 512 px on this CPU: about 28.9")
    assert estimate(400, 512, "cuda").startswith("400 steps at 512 px: on a GPU about 7 min")
    assert estimate(30, 64, "cpu", tiny=True) == "The tiny test model trains 30 steps in about 9 s."


def test_the_smoothed_curve_starts_at_the_first_loss_and_lags_a_drop():
    curve = smooth_curve([1.0, 1.0, 0.0, 0.0])
    assert curve[:2] == [1.0, 1.0] and 0.0 < curve[3] < curve[2] < 1.0
    assert smooth_curve([]) == []


def test_a_turn_gives_its_slot_to_a_waiting_request_between_steps():
    gate, order = Gate(limit=1, max_waiting=0), []
    turn = Turn(gate, RunControl())
    with turn:
        def image():
            with gate.slot(refuse_when_full=False):
                order.append("image")

        waiter = threading.Thread(target=image)
        waiter.start()
        while not gate.waiting():
            time.sleep(0.01)
        turn.give_way()  # returns once the image ran and the slot is the training's again
        order.append("step")
    waiter.join(5)
    assert order == ["image", "step"] and gate.waiting() == 0
