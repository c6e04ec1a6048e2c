import numpy as np
import pytest
from PIL import Image

from engine import video
from engine.faces.aging import (
    BLEND_FRAMES,
    AgingRequest,
    aging_timelapse,
    check_aging,
    frame_plan,
    labelled_grid,
    parse_ages,
    timeline,
)
from engine.faces.portrait import find_face_area
from engine.image.request import RunControl

FAST = dict(num_inference_steps=3, strength=0.6, size=64, sampler="Euler", seed=9, fps=4)


def arr(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture
def noises(monkeypatch):
    """Every initial noise the inpaint pipeline draws."""
    from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_inpaint as module

    drawn = []
    original = module.randn_tensor

    def spy(*args, **kwargs):
        tensor = original(*args, **kwargs)
        drawn.append(tensor.clone())
        return tensor
    monkeypatch.setattr(module, "randn_tensor", spy)
    return drawn


def test_ages_parse_from_lists_and_ranges():
    assert parse_ages("10, 20,30") == [10, 20, 30]
    assert parse_ages("10-80/10") == [10, 20, 30, 40, 50, 60, 70, 80]
    with pytest.raises(ValueError, match="whole numbers"):
        parse_ages("ten, twenty")


@pytest.mark.parametrize("ages, message", [([40], "at least two ages"), ([40, 20], "must rise"),
                                           ([0, 20], "from 1 to 100"), ([20, 101], "from 1 to 100"),
                                           ([20, 20], "must rise")])
def test_bad_ages_get_one_sentence(ages, message):
    with pytest.raises(ValueError, match=message):
        check_aging(AgingRequest(ages=ages))


def test_unknown_subject_is_refused():
    with pytest.raises(ValueError, match="Unknown subject"):
        check_aging(AgingRequest(ages=[20, 40], subject="cat"))


def test_timelapse_keeps_the_background_and_uses_the_same_noise_for_every_age(tiny_manager, astronaut, tmp_path,
                                                                             noises):
    req = AgingRequest(ages=[20, 50, 80], transition_frames=1, **FAST)
    result = aging_timelapse(tiny_manager, req, astronaut, tmp_path)
    # 1. every rendered frame (3 ages + 2 in-betweens) started from identical noise
    assert len(noises) == 5 and all(np.array_equal(noises[0], n) for n in noises[1:])
    # 2. outside the face mask nothing changed
    area = find_face_area(astronaut, padding=req.padding)
    outside = np.asarray(area.mask) == 0
    for _, image in result.keyframes:
        assert image.size == astronaut.size
        assert np.array_equal(arr(image)[outside], arr(astronaut)[outside])
        assert not np.array_equal(arr(image)[~outside], arr(astronaut)[~outside])
    # 3. the video has the planned frames and duration
    hold = round(req.fps * 0.5)
    rendered = 3 + 2 * 1
    expected = 3 * hold + 2 * 1 + (rendered - 1) * BLEND_FRAMES
    info = video.video_info(result.video)
    assert (info["codec"], info["pix_fmt"], info["frames"]) == ("h264", "yuv420p", expected)
    assert info["duration"] == pytest.approx(expected / req.fps, abs=0.01)
    assert [age for age, _ in result.keyframes] == [20, 50, 80]
    assert result.grid.width > result.grid.height
    assert (tmp_path / "age_050.png").exists() and (tmp_path / "grid.png").exists()


def test_same_settings_give_the_same_ages(tiny_manager, astronaut, tmp_path):
    req = AgingRequest(ages=[30, 60], transition_frames=0, **FAST)
    a = aging_timelapse(tiny_manager, req, astronaut, tmp_path / "a")
    b = aging_timelapse(tiny_manager, req, astronaut, tmp_path / "b")
    assert all(np.array_equal(arr(x), arr(y)) for (_, x), (_, y) in zip(a.keyframes, b.keyframes))


def test_stop_keeps_the_ages_done(tiny_manager, astronaut, tmp_path):
    control = RunControl()

    def on_frame(update):
        if update.index == 2:
            control.stop()
    result = aging_timelapse(tiny_manager, AgingRequest(ages=[20, 40, 60, 80], **FAST), astronaut, tmp_path,
                             on_frame, control)
    assert result.interrupted and [a for a, _ in result.keyframes] == [20, 40]
    assert video.video_info(result.video)["frames"] > 0


def test_captions_are_drawn_and_frames_are_planned():
    assert frame_plan([20, 40, 60], 2) == [(0, 0.0), (0, 1 / 3), (0, 2 / 3), (1, 0.0), (1, 1 / 3), (1, 2 / 3),
                                           (2, 0.0)]
    red, blue = Image.new("RGB", (64, 64), (200, 0, 0)), Image.new("RGB", (64, 64), (0, 0, 200))
    plain = timeline([(20.0, red, True), (40.0, blue, True)], hold=2, blends=2, captions=False)
    captioned = timeline([(20.0, red, True), (40.0, blue, True)], hold=2, blends=2, captions=True)
    assert len(plain) == len(captioned) == 2 + 2 + 2
    assert not np.array_equal(arr(plain[0])[40:, :32], arr(captioned[0])[40:, :32])
    assert np.array_equal(arr(plain[0])[:16, 32:], arr(captioned[0])[:16, 32:])
    assert labelled_grid([(20, red), (40, blue)]).size == (512, 256)


def test_no_face_says_so_and_offers_the_whole_photo(tiny_manager, tmp_path):
    blank = Image.new("RGB", (128, 128), (120, 160, 200))
    with pytest.raises(ValueError, match="No face"):
        aging_timelapse(tiny_manager, AgingRequest(ages=[20, 40], **FAST), blank, tmp_path)
    result = aging_timelapse(tiny_manager, AgingRequest(ages=[20, 40], whole_photo=True, **FAST), blank, tmp_path)
    assert len(result.keyframes) == 2 and result.keyframes[0][1].size == (128, 128)
