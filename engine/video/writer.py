"""Frames to videos that browsers play: H.264 MP4 (yuv420p, even size, faststart) and looping GIFs.

We pipe raw RGB frames straight into the ffmpeg binary that imageio-ffmpeg ships instead of
going through moviepy: moviepy's `ImageSequenceClip` counts frames as `int(sum(1/fps) * fps)`,
which rounds down and drops the last frame (e.g. 6 frames at 3 fps give 5). Piping is exact.

Every frame of at least 256x256 pixels gets the invisible watermark of `engine.provenance` as it
is streamed, and every file says "AI-generated" in its metadata (MP4 `description`, GIF comment).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engine import provenance

MAX_FPS = 60
GIF_MAX_FPS = 50  # GIF delays are in 1/100 s and browsers slow down anything under 2/100 s
DEFAULT_TITLE = "Diffusion Studio"


# ---------------------------------------------------------------- checks and conversions


def _check_fps(fps, limit: int = MAX_FPS) -> float:
    """Reject frame rates that players cannot honour, before any work is done."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps):
        raise ValueError(f"Give fps as a number between 1 and {limit}, not {fps!r}.")
    if not 0 < fps <= limit:
        raise ValueError(f"Set fps above 0 and at most {limit} (got {fps}).")
    return float(fps)


def _to_array(frame) -> np.ndarray:
    """Accept PIL images in any mode and HxWx3 uint8 arrays, the two forms the pipelines return."""
    if isinstance(frame, Image.Image):
        return np.asarray(frame.convert("RGB"))
    if isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8:
        return frame
    raise ValueError("Pass frames as PIL images or HxWx3 uint8 numpy arrays.")


def _to_image(frame) -> Image.Image:
    """Work in RGB PIL images for drawing and blending."""
    if isinstance(frame, Image.Image):
        return frame.convert("RGB")
    return Image.fromarray(_to_array(frame))


def _pad_even(array: np.ndarray) -> np.ndarray:
    """libx264's yuv420p needs even sides; repeat the edge pixel so nothing is stretched or darkened."""
    h, w = array.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return array
    return np.pad(array, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _check_path(path, suffix: str) -> Path:
    """Catch a wrong file ending early, since the container follows the function, not the name."""
    path = Path(path)
    if path.suffix.lower() != suffix:
        raise ValueError(f"Give the output file a {suffix} ending (got {path.name!r}).")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _temp_beside(path: Path) -> Path:
    """A hidden temp file in the same folder, so the final rename is atomic."""
    while True:  # created exclusively, with the usual permissions (mkstemp's are private: 0600)
        temp = path.parent / f".{path.stem}.{secrets.token_hex(4)}.part"
        try:
            with open(temp, "xb"):
                return temp
        except FileExistsError:
            continue


def _metadata_json(metadata: dict | None) -> str:
    """Store metadata as one compact ASCII JSON line that survives the MP4 comment tag."""
    if metadata is None:
        return "{}"
    if not isinstance(metadata, dict):
        raise ValueError("Pass metadata as a dict of JSON-serialisable values.")
    try:
        return json.dumps(metadata, ensure_ascii=True, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Make every metadata value JSON-serialisable ({error}).") from None


# ---------------------------------------------------------------- MP4


def _ffmpeg_exe() -> str:
    """Use imageio-ffmpeg's bundled binary so no system ffmpeg is needed."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise ImportError("Install imageio-ffmpeg to write MP4 videos: pip install imageio-ffmpeg") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg_command(exe: str, size: tuple[int, int], fps: float, quality: int, title: str, comment: str,
                    out: Path) -> list[str]:
    """One raw-RGB input on stdin at a constant rate, so frames in == frames out."""
    rate = Fraction(fps).limit_denominator(1001)
    return [
        exe, "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size[0]}x{size[1]}",
        "-framerate", f"{rate.numerator}/{rate.denominator}", "-i", "pipe:0",
        "-an", "-c:v", "libx264", "-preset", "medium", "-crf", str(quality), "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", "-metadata", f"title={title}", "-metadata", f"comment={comment}",
        "-metadata", f"description={provenance.AI_NOTE}",
        "-f", "mp4", str(out),
    ]


def _last_line(text: bytes) -> str:
    lines = [line.strip() for line in text.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1] if lines else "ffmpeg printed no error"


def _feed(proc: subprocess.Popen, first: np.ndarray, rest) -> int:
    """Stream frames into ffmpeg one at a time, so long walks never sit in memory twice.

    Each frame is watermarked after padding, so the mark sits on the pixel grid the file stores.
    """
    shape, count = first.shape, 0
    for frame in _chain(first, rest):
        array = _to_array(frame)
        if array.shape != shape:
            raise ValueError(f"Make all frames the same size: frame {count} is {array.shape[1]}x{array.shape[0]}, "
                             f"the first is {shape[1]}x{shape[0]}.")
        marked = provenance.watermark_array(np.ascontiguousarray(_pad_even(array)))
        try:
            proc.stdin.write(marked.tobytes())
        except BrokenPipeError:
            break  # ffmpeg died; its exit code and stderr say why
        count += 1
    return count


def _chain(first, rest):
    yield first
    yield from rest


def write_mp4(frames: Iterable, path, fps: float, quality: int = 18, metadata: dict | None = None) -> Path:
    """Write frames as an H.264 MP4 that browsers (and Gradio's player) stream, or leave nothing behind.

    Args:
        frames: PIL images or HxWx3 uint8 arrays, all the same size; odd sides are padded by one pixel.
        path: the `.mp4` file to write; an existing file is replaced only when the encode succeeds.
        fps (`float`): frames per second, above 0 and at most `MAX_FPS`; duration = frames / fps.
        quality (`int`, *optional*, defaults to 18): x264 CRF, 0 (lossless) to 51; lower is better.
        metadata (`dict`, *optional*): JSON stored in the MP4 comment tag, read back by `read_metadata`;
            a "title" entry also becomes the MP4 title.

    Frames of at least 256x256 pixels are watermarked (`engine.provenance`) and the `description`
    tag says `provenance.AI_NOTE`. The watermark reads back exactly at the default CRF 18; at CRF 23
    a few of its 64 bits may flip (still recognised by `provenance.has_watermark`); from about CRF 28 it is lost.
    """
    # 1. check inputs
    fps = _check_fps(fps)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 51:
        raise ValueError(f"Set quality (the x264 CRF) to a whole number from 0 to 51, not {quality!r}.")
    comment = _metadata_json(metadata)
    title = str((metadata or {}).get("title", DEFAULT_TITLE))
    path = _check_path(path, ".mp4")
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError("Pass at least one frame to write a video.")
    first = _to_array(first)
    height, width = _pad_even(first).shape[:2]
    exe = _ffmpeg_exe()

    # 2. encode into a temp file beside the target
    tmp = _temp_beside(path)
    try:
        with tempfile.TemporaryFile() as stderr:
            command = _ffmpeg_command(exe, (width, height), fps, quality, title, comment, tmp)
            proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr)
            try:
                written = _feed(proc, first, iterator)
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    pass  # ffmpeg died with frames still buffered; its exit code and stderr say why
                returncode = proc.wait()
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            stderr.seek(0)
            message = stderr.read()
        if returncode != 0:
            raise RuntimeError(f"ffmpeg could not encode the video (exit code {returncode}): {_last_line(message)}")
        if written == 0:
            raise RuntimeError("ffmpeg stopped before taking any frame; check that the ffmpeg binary works.")
        # 3. publish atomically
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ---------------------------------------------------------------- GIF


def write_gif(frames: Iterable, path, fps: float) -> Path:
    """Write a looping GIF for places that cannot play video; timing is rounded to 1/100 s.

    Args:
        frames: PIL images or HxWx3 uint8 arrays, all the same size.
        path: the `.gif` file to write; an existing file is replaced only when writing succeeds.
        fps (`float`): frames per second, above 0 and at most `GIF_MAX_FPS` (50).

    Pillow merges identical consecutive frames into one longer frame; the playing time is unchanged.
    Frames of at least 256x256 pixels are watermarked before the 256-colour palette is chosen (a few
    of the 64 bits may flip; `provenance.has_watermark` allows for that) and the GIF comment says
    `provenance.AI_NOTE`.
    """
    fps = _check_fps(fps, GIF_MAX_FPS)
    path = _check_path(path, ".gif")
    images = [provenance.watermark(_to_image(frame)) for frame in frames]
    if not images:
        raise ValueError("Pass at least one frame to write a GIF.")
    if any(image.size != images[0].size for image in images):
        raise ValueError("Make all frames the same size before writing a GIF.")
    tmp = _temp_beside(path)
    try:
        images[0].save(
            tmp, format="GIF", save_all=True, append_images=images[1:],
            duration=max(20, round(1000 / fps)), loop=0, comment=provenance.AI_NOTE,
        )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ---------------------------------------------------------------- reading back


def _open_av(path):
    """Open a media file with PyAV, with plain errors for a missing package or file."""
    try:
        import av
    except ImportError:
        raise ImportError("Install PyAV to read videos: pip install av") from None
    if not Path(path).is_file():
        raise ValueError(f"Check the path: there is no file at {str(path)!r}.")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as error:
        raise ValueError(f"Pass a video file; {Path(path).name!r} could not be opened ({error}).") from None


def read_metadata(path) -> dict:
    """Recover the settings a video was made with from the JSON that `write_mp4` stored; {} if none.

    The AI-generated note is a separate tag (`description`), so this dict is exactly what was passed.
    """
    with _open_av(path) as container:
        comment = container.metadata.get("comment", "")
    try:
        data = json.loads(comment)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def video_info(path) -> dict:
    """Describe what players will actually see: codec, pixel format, size, exact frame count, fps, duration."""
    with _open_av(path) as container:
        if not container.streams.video:
            raise ValueError(f"Pass a file with a video stream; {Path(path).name!r} has none.")
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        rate = stream.average_rate or stream.guessed_rate
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = frames / float(rate) if rate else 0.0
        return {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "frames": frames,
            "fps": float(rate) if rate else 0.0,
            "duration": duration,
        }


# ---------------------------------------------------------------- frame helpers


def crossfade(a, b, n: int) -> list[Image.Image]:
    """Blend between two frames so a cut becomes a dissolve; the ends themselves are not repeated."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"Set the number of crossfade frames to a whole number of 0 or more, not {n!r}.")
    a, b = _to_image(a), _to_image(b)
    if a.size != b.size:
        raise ValueError(f"Crossfade frames of the same size (got {a.size} and {b.size}).")
    return [Image.blend(a, b, i / (n + 1)) for i in range(1, n + 1)]


def _measure(draw: ImageDraw.ImageDraw, text: str, size: int):
    """Font, outline width, text box and the band width it needs at one font size."""
    font, stroke = ImageFont.load_default(size=size), max(1, size // 12)
    box = draw.textbbox((0, 0), text, font=font, stroke_width=stroke)
    return font, stroke, box, box[2] - box[0] + 2 * max(2, size // 4)


def _fit(draw: ImageDraw.ImageDraw, text: str, size: int, room: int):
    """Shrink the font (not below 8 px), then cut the text with "...", until the caption fits the width."""
    font, stroke, box, needed = _measure(draw, text, size)
    if needed > room and size > 8:
        size = max(8, int(size * room / needed))
        font, stroke, box, needed = _measure(draw, text, size)
    while needed > room and len(text) > 1:
        text = text[:-4].rstrip() + "..." if len(text) > 4 else text[:-1]
        font, stroke, box, needed = _measure(draw, text, size)
    return text, font, stroke, box, size


def caption(frame, text: str) -> Image.Image:
    """Label a frame (e.g. "Age 40") bottom-left on a dark band, readable on any background."""
    if not isinstance(text, str) or not text.strip() or "\n" in text:
        raise ValueError("Give the caption as one non-empty line of text.")
    image = _to_image(frame).copy()
    width, height = image.size
    margin = max(2, round(height * 0.03))
    text, font, stroke, box, size = _fit(ImageDraw.Draw(image), text, max(8, round(height * 0.06)), width - 2 * margin)
    pad = max(2, size // 4)
    text_w, text_h = box[2] - box[0], box[3] - box[1]
    band = (margin, height - margin - text_h - 2 * pad, margin + text_w + 2 * pad, height - margin)
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    ImageDraw.Draw(overlay).rectangle(band, fill=(0, 0, 0, 150))
    image = Image.alpha_composite(image.convert("RGBA"), overlay)
    ImageDraw.Draw(image).text(
        (band[0] + pad - box[0], band[1] + pad - box[1]), text, font=font,
        fill=(255, 255, 255, 255), stroke_width=stroke, stroke_fill=(0, 0, 0, 255),
    )
    return image.convert("RGB")


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f}" if seconds >= 0.95 else f"{seconds:.2f}"


def describe_length(frames, fps: float) -> str:
    """Answer "why is my video only 1 s long" up front: length = frames / fps."""
    count = frames if isinstance(frames, int) and not isinstance(frames, bool) else None
    if count is None and hasattr(frames, "__len__"):
        count = len(frames)
    if count is None or count < 0:
        raise ValueError("Pass the frame count as a whole number of 0 or more, or the list of frames.")
    fps = _check_fps(fps)
    noun = "frame" if count == 1 else "frames"
    return f"{count} {noun} at {fps:g} fps = {_seconds(count / fps)} s of video"
