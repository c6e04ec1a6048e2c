"""engine.video: what browsers get (codec, pixel format, size, frame count, duration) and clean failures."""

import json
import stat

import numpy as np
import pytest
from PIL import Image

from engine.video import writer as video


def _frames(n, width=32, height=24, seed=0):
    """Distinct frames: a moving bright bar on noise, so no encoder or GIF writer can merge them."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        frame = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
        frame[:, (i * 3) % width] = 255
        frames.append(frame)
    return frames


# ---------------------------------------------------------------- write_mp4


def test_mp4_is_browser_playable_with_exact_frames_and_duration(tmp_path):
    path = video.write_mp4(_frames(10), tmp_path / "walk.mp4", fps=5)
    info = video.video_info(path)
    assert info["codec"] == "h264"
    assert info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"]) == (32, 24)
    assert info["frames"] == 10
    assert info["fps"] == pytest.approx(5.0)
    assert info["duration"] == pytest.approx(2.0, abs=1e-3)


@pytest.mark.parametrize("count, fps", [(6, 3), (7, 3), (1, 60), (13, 7), (25, 12), (9, 29.97)])
def test_mp4_never_drops_or_repeats_frames(tmp_path, count, fps):
    # moviepy's ImageSequenceClip drops the last frame for (6, 3) and (7, 3)
    info = video.video_info(video.write_mp4(_frames(count), tmp_path / "v.mp4", fps=fps))
    assert info["frames"] == count
    assert info["duration"] == pytest.approx(count / fps, abs=1e-3)


def test_mp4_frames_keep_their_order(tmp_path):
    import av

    frames = [np.full((16, 16, 3), level, np.uint8) for level in (0, 60, 120, 180, 240)]
    path = video.write_mp4(frames, tmp_path / "ramp.mp4", fps=10, quality=0)
    with av.open(str(path)) as container:
        means = [frame.to_ndarray(format="rgb24").mean() for frame in container.decode(video=0)]
    assert means == pytest.approx([0, 60, 120, 180, 240], abs=3)


def test_odd_sizes_are_padded_to_even_without_distortion(tmp_path):
    frames = [Image.fromarray(frame) for frame in _frames(4, width=33, height=17)]
    info = video.video_info(video.write_mp4(frames, tmp_path / "odd.mp4", fps=8))
    assert (info["width"], info["height"]) == (34, 18)
    assert info["frames"] == 4


def test_metadata_reads_back_and_title_is_set(tmp_path):
    import av

    meta = {"prompt": 'a cat, "wet"\nin rain é', "seed": 42, "steps": 20, "title": "Latent walk", "long": "x" * 5000}
    path = video.write_mp4(_frames(3), tmp_path / "m.mp4", fps=3, metadata=meta)
    assert video.read_metadata(path) == meta
    with av.open(str(path)) as container:
        assert container.metadata["title"] == "Latent walk"
        assert json.loads(container.metadata["comment"]) == meta


def test_metadata_defaults_to_empty(tmp_path):
    assert video.read_metadata(video.write_mp4(_frames(2), tmp_path / "e.mp4", fps=2)) == {}


def test_faststart_puts_the_index_first(tmp_path):
    data = video.write_mp4(_frames(5), tmp_path / "f.mp4", fps=5).read_bytes()
    assert 0 < data.index(b"moov") < data.index(b"mdat")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fps": 0}, {"fps": -3}, {"fps": 61}, {"fps": float("nan")}, {"fps": True},
        {"fps": 5, "quality": 52}, {"fps": 5, "quality": 2.5},
        {"fps": 5, "metadata": {"bad": object()}},
    ],
)
def test_bad_arguments_raise_value_error_and_write_nothing(tmp_path, kwargs):
    with pytest.raises(ValueError):
        video.write_mp4(_frames(2), tmp_path / "x.mp4", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_no_frames_and_wrong_frames_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="at least one frame"):
        video.write_mp4([], tmp_path / "x.mp4", fps=5)
    with pytest.raises(ValueError, match="uint8"):
        video.write_mp4([np.zeros((8, 8, 3), np.float32)], tmp_path / "x.mp4", fps=5)
    with pytest.raises(ValueError, match=".mp4"):
        video.write_mp4(_frames(2), tmp_path / "x.avi", fps=5)
    assert list(tmp_path.iterdir()) == []


def test_mixed_sizes_fail_midway_and_leave_no_file(tmp_path):
    frames = _frames(5) + _frames(1, width=40)
    with pytest.raises(ValueError, match="same size"):
        video.write_mp4(frames, tmp_path / "x.mp4", fps=5)
    assert list(tmp_path.iterdir()) == []


def test_failed_encode_raises_runtime_error_and_keeps_old_file(tmp_path, monkeypatch):
    # a stand-in ffmpeg that writes half a file, complains and exits 1
    fake = tmp_path / "ffmpeg"
    fake.write_text('#!/bin/sh\nfor last; do :; done\necho partial > "$last"\necho "Unknown encoder boom" >&2\nexit 1\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(video, "_ffmpeg_exe", lambda: str(fake))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.mp4").write_bytes(b"old")
    with pytest.raises(RuntimeError, match="Unknown encoder boom"):
        video.write_mp4(_frames(50, 256, 256), out / "keep.mp4", fps=5)
    with pytest.raises(RuntimeError):
        video.write_mp4(_frames(3), out / "new.mp4", fps=5)
    assert sorted(p.name for p in out.iterdir()) == ["keep.mp4"]
    assert (out / "keep.mp4").read_bytes() == b"old"


def test_frames_can_be_a_generator(tmp_path):
    info = video.video_info(video.write_mp4((f for f in _frames(7)), tmp_path / "g.mp4", fps=7))
    assert info["frames"] == 7


# ---------------------------------------------------------------- GIF


def test_gif_keeps_every_frame_and_loops(tmp_path):
    path = video.write_gif([Image.fromarray(f) for f in _frames(6)], tmp_path / "a.gif", fps=10)
    with Image.open(path) as gif:
        assert gif.n_frames == 6
        assert gif.info["loop"] == 0
        assert gif.info["duration"] == 100
    assert video.video_info(path)["frames"] == 6


def test_gif_rejects_rates_browsers_cannot_play(tmp_path):
    with pytest.raises(ValueError, match="50"):
        video.write_gif(_frames(2), tmp_path / "a.gif", fps=60)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- reading back


def test_reading_a_missing_or_bad_file_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match="no file"):
        video.video_info(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    with pytest.raises(ValueError):
        video.read_metadata(junk)


# ---------------------------------------------------------------- frame helpers


def test_crossfade_excludes_both_ends_and_blends_evenly():
    a = np.zeros((8, 8, 3), np.uint8)
    b = np.full((8, 8, 3), 200, np.uint8)
    blends = video.crossfade(a, b, 3)
    assert len(blends) == 3
    assert [np.asarray(im).mean() for im in blends] == pytest.approx([50, 100, 150], abs=1)
    assert video.crossfade(a, b, 0) == []
    with pytest.raises(ValueError):
        video.crossfade(a, np.zeros((9, 8, 3), np.uint8), 2)
    with pytest.raises(ValueError):
        video.crossfade(a, b, -1)


@pytest.mark.parametrize("level", [0, 255])
def test_caption_changes_only_the_bottom_left(level):
    frame = np.full((256, 256, 3), level, np.uint8)
    out = np.asarray(video.caption(frame, "Age 40"))
    assert out.shape == frame.shape
    changed = np.argwhere(np.any(out != frame, axis=2))
    assert len(changed) > 100
    assert changed[:, 0].min() > 256 * 0.7  # rows: bottom only
    assert changed[:, 1].max() < 256 * 0.5  # columns: left only
    assert np.array_equal(frame, np.full((256, 256, 3), level, np.uint8))  # input untouched


def test_caption_font_scales_with_frame_height():
    def text_height(size):
        frame = np.full((size, size, 3), 128, np.uint8)
        rows = np.argwhere(np.any(np.asarray(video.caption(frame, "Age 40")) != 128, axis=2))[:, 0]
        return rows.max() - rows.min()

    assert text_height(512) > 1.7 * text_height(256)


def test_caption_shrinks_long_text_to_fit():
    frame = np.full((128, 96, 3), 128, np.uint8)
    out = np.asarray(video.caption(frame, "A fairly long caption for a thin frame"))
    assert np.any(out != 128)
    assert np.all(out[:, -1] == 128)  # the right edge is untouched
    with pytest.raises(ValueError):
        video.caption(frame, "  ")


def test_describe_length():
    assert video.describe_length(48, 12) == "48 frames at 12 fps = 4.0 s of video"
    assert video.describe_length(_frames(10), 5) == "10 frames at 5 fps = 2.0 s of video"
    assert video.describe_length(1, 12) == "1 frame at 12 fps = 0.08 s of video"
    assert video.describe_length(30, 7.5) == "30 frames at 7.5 fps = 4.0 s of video"
    with pytest.raises(ValueError):
        video.describe_length(10, 0)


def test_videos_get_the_same_permissions_as_images(tmp_path):
    from engine.files.pnginfo import save_png

    frames = [np.full((64, 64, 3), i * 20, np.uint8) for i in range(3)]
    mp4 = video.write_mp4(frames, tmp_path / "v.mp4", fps=4)
    png = save_png(frames[0], tmp_path / "f.png", "x")
    assert (mp4.stat().st_mode & 0o777) == (png.stat().st_mode & 0o777)
    assert not list(tmp_path.glob(".*.part"))
