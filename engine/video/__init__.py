"""Video: the MP4/GIF writer, a resumable run's folder, walks and dreams, interpolation, denoising videos, Animate
and Text to video.

The package's own names are those of `writer`, so `from engine import video` reads as before."""
from engine.video.writer import (  # noqa: F401
    DEFAULT_TITLE,
    GIF_MAX_FPS,
    MAX_FPS,
    caption,
    crossfade,
    describe_length,
    read_metadata,
    video_info,
    write_gif,
    write_mp4,
)
