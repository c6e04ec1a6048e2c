"""A resumable run's folder, shared by walks, dreams, Animate and Text to video: where its frames, video and plan
go, frames written so a crash never leaves half a file, and the frames encoded into the video."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image

from engine import video
from engine.files import pnginfo


@dataclass
class RunPaths:
    """Where a run writes: its frames, its video, and the JSON plan beside the video."""

    frames: Path
    video: Path

    @property
    def plan(self) -> Path:
        return self.video.with_suffix(".json")

    @classmethod
    def in_folder(cls, folder: Path, name: str) -> "RunPaths":
        return cls(frames=folder / "frames", video=folder / f"{name}.mp4")


def plan_run_paths(plan_path: Path, plan: dict) -> RunPaths:
    """Where a planned run writes, derived from the plan file's own place, so a crafted plan can't write elsewhere.

    The plan's `frames_dir` only picks between the two layouts the app writes (`frames/` in the UI's run
    folders, `<name>-frames/` beside the CLI's `--out`); the video is always `<name>.mp4` beside the plan.
    """
    folder, name = plan_path.parent, plan_path.stem
    frames = (folder / ("frames" if plan.get("frames_dir") == "frames" else f"{name}-frames")).resolve()
    recorded = str(plan.get("video", ""))
    video = folder / (recorded if recorded.lower() == f"{name}.mp4".lower() else f"{name}.mp4")
    return RunPaths(frames=frames, video=video)


def prepare_folder(folder: Path) -> None:
    """Create a run's frame folder and prove it can be written, before any work is spent on frames."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"The output folder {folder} can't be written ({exc.strerror}); "
                         "choose another folder.") from exc


def encode_frames(frames: list[Path], paths: RunPaths, fps: float, quality: int, metadata: dict, gif: bool,
                  finish_mp4: Callable[[Path], None] | None = None) -> Path | None:
    """A run's frames as its MP4 (and GIF, at most `GIF_MAX_FPS`); None when there are none yet.

    `finish_mp4(path)` may add to the MP4 (Animate puts the source's sound back). An encoder failure keeps the
    frames on disk and says so, so Resume can try the video again.
    """
    if not frames:
        return None
    try:
        video_path = video.write_mp4([Image.open(p) for p in frames], paths.video, fps, quality, metadata=metadata)
        if finish_mp4:
            finish_mp4(video_path)
        if gif:
            video.write_gif([Image.open(p) for p in frames], paths.video.with_suffix(".gif"),
                            min(fps, video.GIF_MAX_FPS))
    except RuntimeError as exc:
        raise ValueError(f"The video could not be encoded ({exc}); the {len(frames)} frames are kept in "
                         f"{paths.frames}, and Resume tries the video again.") from exc
    return video_path


def frame_path(paths: RunPaths, index: int) -> Path:
    """Where frame `index` of a run is saved (walks, dreams and animations name them alike)."""
    return paths.frames / f"{index:05d}.png"


def frame_paths(paths: RunPaths, total: int) -> list[Path]:
    """Frames on disk, in order, up to the first gap."""
    found = []
    for i in range(total):
        path = frame_path(paths, i)
        if not path.exists():
            break
        found.append(path)
    return found


def save_frame(image: Image.Image, path: Path) -> None:
    """Write then rename, so a crash never leaves a half-written frame that resume would trust."""
    temp = path.with_suffix(".tmp")
    temp.write_bytes(pnginfo.png_bytes(image, ""))
    temp.replace(path)


def write_json(path: Path, data: dict) -> None:
    temp = path.with_suffix(".json.tmp")
    temp.write_text(json.dumps(data, indent=1))
    temp.replace(path)
