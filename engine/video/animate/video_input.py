"""Video input: read every nth frame of a source video, and put its sound back on the result."""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_SOURCE_SECONDS = 600  # ten minutes of source; longer clips are better cut first
MAX_SOURCE_FRAMES = 20000


@dataclass
class SourceInfo:
    """What the source holds: its frame count, frame rate, size and whether it has sound."""

    frames: int
    fps: float
    width: int
    height: int
    has_audio: bool


def _open(path):
    try:
        import av
    except ImportError:
        raise ImportError("Install PyAV to read videos: pip install av") from None
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"The source video {path.name} was not found; upload it again.")
    try:
        container = av.open(str(path))
    except Exception:
        raise ValueError(f"{path.name} is not a video that can be read; upload an MP4, WebM, MOV or GIF.") from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path.name} has no video in it; upload a video file.")
    return container


def source_info(path) -> SourceInfo:
    """Count the frames (by decoding, so the count is exact) and check the length limits."""
    name = Path(path).name
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        if container.duration and container.duration / 1_000_000 > MAX_SOURCE_SECONDS:
            raise ValueError(f"{name} is {container.duration / 1_000_000:.0f} s long; cut it to "
                             f"{MAX_SOURCE_SECONDS // 60} minutes or less first.")
        count = 0
        try:
            for _ in container.decode(stream):
                count += 1
                if count > MAX_SOURCE_FRAMES:
                    raise ValueError(f"{name} has more than {MAX_SOURCE_FRAMES} frames; cut it shorter first.")
        except ValueError:
            raise
        except Exception:
            if count == 0:
                raise ValueError(f"{name} could not be decoded; upload an MP4, WebM, MOV or GIF.") from None
        width, height = stream.codec_context.width, stream.codec_context.height
        has_audio = bool(container.streams.audio)
    if count == 0:
        raise ValueError(f"{name} has no frames; upload a video with at least one frame.")
    if not fps or fps <= 0:
        fps = 24.0
    return SourceInfo(count, fps, width, height, has_audio)


def read_frames(path, nth: int, size: tuple[int, int], start: int = 0):
    """Yield (output index, HxWx3 uint8 frame resized to `size`) for source frames 0, nth, 2*nth, ...

    Output indices before `start` are skipped without resizing (resume).
    """
    from PIL import Image

    with _open(path) as container:
        stream = container.streams.video[0]
        for number, frame in enumerate(container.decode(stream)):
            if number % nth:
                continue
            index = number // nth
            if index < start:
                continue
            image = frame.to_image().convert("RGB").resize(size, Image.LANCZOS)
            yield index, np.asarray(image)


def add_sound(video_path: Path, source: Path, seconds: float) -> bool:
    """Put the source's sound (its first `seconds`) on the made video; the picture is copied, not re-encoded.

    Returns False, leaving the video silent, when ffmpeg can't do it (the reason is not worth failing the run for).
    """
    from engine.video.writer import _ffmpeg_exe

    temp = video_path.with_name(f".{video_path.stem}.sound.mp4")
    command = [_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(video_path), "-i", str(source),
               "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-t", f"{seconds:.3f}",
               "-map_metadata", "0", "-movflags", "+faststart", str(temp)]
    try:
        done = subprocess.run(command, capture_output=True, timeout=600)
        if done.returncode != 0 or not temp.exists():
            return False
        temp.replace(video_path)
        return True
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        temp.unlink(missing_ok=True)
