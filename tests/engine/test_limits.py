"""Input limits: ranges counted before they are listed, short excerpts in messages, non-finite numbers refused."""
from __future__ import annotations

import json
import math
import time
import tracemalloc

import pytest

from engine.faces.aging import AgingRequest, check_aging, parse_ages
from engine.text.limits import count_range, excerpt, listed, whole_number
from engine.text.prompts import _runs
from engine.video.animate import schedules
from engine.video.animate.deforum_settings import parse_settings, read_settings, unused_note
from engine.video.animate.request import AnimateRequest, check_animation
from engine.video.walk_request import dream_request, parse_prompts, parse_seeds
from engine.xyz import parse_axis_spec

SHORT = 300  # characters: a sentence and a short excerpt, never the input


def refused(call, *args):
    """The sentence `call(*args)` raises, with the time and the peak memory it took to say it."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError) as error:
            call(*args)
        return str(error.value), time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# 1. the helpers
def test_excerpt_quotes_short_text_whole_and_cuts_long_text_saying_its_length():
    assert excerpt("1-10, 20") == "'1-10, 20'"
    long = excerpt("x" * 10_000_000)
    assert long.startswith("'" + "x" * 40 + "'…") and "10,000,000 characters" in long and len(long) < 80
    assert "5,001 digits" in excerpt(10 ** 5000)  # repr() of such an int raises in Python 3.11
    assert excerpt(2.5) == "2.5" and excerpt(math.nan) == "nan"
    assert len(excerpt(list(range(10 ** 6)))) < 60


@pytest.mark.parametrize("start, stop, step, count", [
    (1, 10, 1, 10), (1, 10_000_000, 1, 10_000_000), (20, 1, -5, 4), (1, 20, 5, 4), (5, 1, 1, 0),
    (1.0, 2.0, 0.25, 5), (1.0, 2.0, 1e-10, 10_000_000_001), (0.0, 1e308, 1e-308, math.inf),
    (1, 10 ** 400, 1, 10 ** 400),
])
def test_count_range_counts_without_listing(start, stop, step, count):
    assert count_range(start, stop, step) == count


def test_listed_cuts_long_lists_and_whole_number_refuses_nan_infinity_and_text():
    assert listed(range(1000)) == "0, 1, 2, 3, 4 and 995 more" and listed([1, 2]) == "1, 2"
    assert whole_number("12", "Frames", 1, 20) == 12 and whole_number(3.0, "Frames", 1, 20) == 3
    for bad in (math.nan, math.inf, 10 ** 400, 2.5, True, "x" * 100_000, None):
        with pytest.raises(ValueError, match="Frames must be a whole number from 1 to 20") as error:
            whole_number(bad, "Frames", 1, 20)
        assert len(str(error.value)) < SHORT


# 2. range bombs: refused at once, in a short sentence, without listing anything
@pytest.mark.parametrize("text, says", [
    ("1-10000000/1", "from 1 to 100; got the range '1-10000000/1'"),
    ("1-" + "9" * 5000 + "/1", "5,004 characters"),
    (", ".join(["50"] * 200_000), "characters long; give at most 100 ages"),
    (", ".join(str(a) for a in range(1, 120)), "give at most 100"),
])
def test_age_ranges_are_checked_before_they_are_expanded(text, says):
    message, seconds, peak = refused(parse_ages, text)
    assert says in message and len(message) < SHORT
    assert seconds < 0.5 and peak < 2_000_000


def test_ages_out_of_range_are_listed_briefly():
    message, _, _ = refused(check_aging, AgingRequest(ages=list(range(50, 150))))
    assert "50, 51, 52, 53, 54 and 95 more" in message and len(message) < SHORT
    assert parse_ages("10-80/10") == [10, 20, 30, 40, 50, 60, 70, 80]


@pytest.mark.parametrize("spec, says", [
    ("Seed: 1-4000000000 (+1)", "4,000,000,000 values"),
    ("CFG Scale: 1-2 (+0.0000000001)", "10,000,000,001 values"),
    ("Steps: 1-10 [100000000]", "100,000,000 values"),
    ("Steps: 1-10 [" + "9" * 3000 + "]", "more values than can be counted"),
    ("Steps: 1-" + "9" * 400 + " (+1)", "a number too large to use"),
    ("Seed: 1-60, 61-120", "the range '61-120' the axis has 120 values"),
    ("Seed: 1-100, 7", "101 values"),
    ("Sampler: " + ", ".join(["Euler"] * 5000), "the values are"),
    ("Prompt S/R: " + ", ".join(["cat"] * 101), "101 values"),
    ("Nope" * 100_000 + ": 1", "unknown axis 'NopeNope"),
])
def test_xyz_ranges_are_counted_before_they_are_listed(spec, says):
    message, seconds, peak = refused(parse_axis_spec, spec)
    assert says in message
    assert len(message) < SHORT and seconds < 0.5 and peak < 5_000_000


def test_xyz_ranges_within_the_limit_still_work():
    assert parse_axis_spec("Seed: 1-60, 61-100").values == tuple(range(1, 101))
    assert len(parse_axis_spec("CFG Scale: 1-2 [100]")) == 100


@pytest.mark.parametrize("text, says", [
    ("99999999999999999999:(1)", "past frame 100,000"),
    ("9" * 400 + ":(1)", "past frame 100,000"),  # was an OverflowError: float('9' * 400) is infinity
    ("1.5:(1)", "whole frame number"),
    (", ".join(f"{k}:(1)" for k in range(1200)), "more than 1,000 keyframes"),
    ("0:(" + "x" * 400 + ")", "the name 'xxxxxxxx"),
    ("0:(1) " + "y" * 100_000, "characters long"),
])
def test_schedules_refuse_bombs_in_a_short_sentence(text, says):
    message, seconds, _ = refused(schedules.parse_schedule, text, "zoom")
    assert says in message and "zoom" in message and len(message) < SHORT and seconds < 1


@pytest.mark.parametrize("text, says", [
    ("0: a\n" + "9" * 5000 + ": b", "past frame 100,000"),
    ("\n".join(f"{k}: p" for k in range(1200)), "more than 1,000 prompt keyframes"),
    ("0: a\n-3: b", "negative frame"),
    ("0: " + "a" * 200_000, "characters long"),
])
def test_keyframed_prompts_refuse_bombs(text, says):
    message, _, _ = refused(schedules.parse_prompts, text)
    assert says in message and len(message) < SHORT


def test_an_animation_lists_late_keyframes_briefly_and_refuses_far_ones():
    _, notes = check_animation(AnimateRequest(prompts={0: "a", **{k: "b" for k in range(30, 90)}}, num_frames=24))
    assert any("30, 31, 32, 33, 34 and 55 more" in n for n in notes) and all(len(n) < SHORT for n in notes)
    message, _, _ = refused(check_animation, AnimateRequest(prompts={0: "a", 10 ** 4000: "b"}))
    assert "from 0 to 100,000" in message and len(message) < SHORT


def test_walk_and_dream_counts_are_checked_before_anything_is_made():
    for call, args, says in ((parse_prompts, ("a\n" * 100_000,), "at most 100"),
                             (parse_seeds, ("1," * 100_000,), "at most 100"),
                             (parse_seeds, ("9" * 4000,), "got a number of about 4,0"),
                             (parse_seeds, ("x" * 100_000,), "100,000 characters"),
                             (dream_request, ("a forest", math.inf), "whole number from 2 to 100"),
                             (dream_request, ("a forest", math.nan), "whole number from 2 to 100")):
        message, seconds, _ = refused(call, *args)
        assert says in message and len(message) < SHORT and seconds < 1


# 3. non-finite numbers and long values in a Deforum settings file
@pytest.mark.parametrize("key, value, says", [
    ("max_frames", math.nan, "max_frames should be a finite number; got nan"),
    ("max_frames", math.inf, "max_frames should be a finite number; got inf"),
    ("fps", -math.inf, "fps should be a finite number"),
    ("W", "x" * 100_000, "W should be a number; got 'xxxx"),
    ("animation_mode", "z" * 100_000, "animation_mode 'zzzz"),
])
def test_settings_files_get_a_sentence_naming_the_field(key, value, says):
    message, _, _ = refused(parse_settings, {key: value})
    assert says in message and len(message) < SHORT


def test_a_settings_file_with_nan_as_json_writes_it_names_the_field(tmp_path):
    path = tmp_path / "settings.txt"
    path.write_text('{"max_frames": NaN, "W": 64}')  # json.dumps writes NaN so; json.loads reads it back
    with pytest.raises(ValueError, match="max_frames should be a finite number"):
        read_settings(path)
    many = {f"unknown_{i}": i for i in range(5000)}
    _, unused = parse_settings(json.loads(json.dumps(many)))
    assert len(unused_note(unused)) < 1000 and "4,980 more" in unused_note(unused)


# 4. prompts: the parser's own limits
def test_deep_brackets_are_refused_before_they_cost_seconds():
    start = time.perf_counter()
    with pytest.raises(ValueError, match="more than 100 brackets"):
        _runs("(a" * 10_000 + ")" * 10_000)
    assert time.perf_counter() - start < 0.5
    assert _runs("(" * 100 + "a" + ")" * 100)[0][1] == pytest.approx(1.1 ** 100)


def test_weights_too_large_for_a_number_are_refused():
    with pytest.raises(ValueError, match=r"The prompt weight '9999.*too large"):
        _runs("(cat:" + "9" * 400 + ")")
    with pytest.raises(ValueError, match="multiply to more than any number"):
        _runs("((cat:1" + "0" * 300 + "):1" + "0" * 300 + ")")
