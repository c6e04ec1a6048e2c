"""Extras over many files: images or a zip in, a zip out; a bad file is named and skipped, the rest go on."""
from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.extras.request import ExtrasRequest
from engine.extras.run import open_image, run_extras
from engine.files import pnginfo

MAX_FILES = 200
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass
class BatchResult:
    zip_path: Path
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "name: sentence"
    total: int = 0
    stopped: bool = False


def inputs(paths: list[Path]) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of each image, zips opened; at most MAX_FILES."""
    count = 0
    for path in paths:
        path = Path(path)
        if path.suffix.lower() == ".zip":
            try:
                archive = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError):
                raise ValueError(f"{path.name} is not a zip file that can be opened.") from None
            with archive:
                for info in archive.infolist():
                    if info.is_dir() or not info.filename.lower().endswith(IMAGE_SUFFIXES):
                        continue
                    count += 1
                    if count > MAX_FILES:
                        raise ValueError(f"A batch takes at most {MAX_FILES} images; split it into smaller ones.")
                    if info.file_size > 200_000_000:
                        raise ValueError(f"{Path(info.filename).name} in {path.name} is too large to unpack.")
                    yield Path(info.filename).name, archive.read(info)
        else:
            count += 1
            if count > MAX_FILES:
                raise ValueError(f"A batch takes at most {MAX_FILES} images; split it into smaller ones.")
            yield path.name, path.read_bytes()


def run_batch(paths: list[Path], template: ExtrasRequest, weights_dir: Path, out_zip: Path,
              on_file: Callable[[int, int, str], None] | None = None,
              stopped: Callable[[], bool] = lambda: False) -> BatchResult:
    """Every image through the same settings into one zip; unreadable files are reported by name.

    Stop ends the batch between files and the zip keeps the pictures already done.
    """
    if not paths:
        raise ValueError("Add some images or a zip of images to the batch.")
    entries = list(inputs(paths))
    if not entries:
        raise ValueError("The batch holds no PNG, JPEG or WebP images.")
    result = BatchResult(Path(out_zip), total=len(entries))
    with zipfile.ZipFile(out_zip, "w", compression=zipfile.ZIP_STORED) as archive:
        for index, (name, data) in enumerate(entries):
            if stopped():
                result.stopped = True
                break
            if on_file:
                on_file(index, len(entries), name)
            try:
                image = open_image(data)
                done = run_extras(replace(template, image=image), weights_dir)
            except ValueError as exc:
                result.skipped.append(f"{name}: {exc}")
                continue
            archive.writestr(_unique(Path(name).stem, result.done), pnginfo.png_bytes(done.image, done.parameters))
            result.done.append(name)
    if not result.done and not result.stopped:
        out_zip.unlink(missing_ok=True)
        raise ValueError("No image in the batch could be upscaled: " + "; ".join(result.skipped[:3]))
    return result



def _unique(stem: str, done: list[str]) -> str:
    """photo.png, photo-2.png...: two inputs of one name (a.jpg and a.png) never overwrite each other."""
    taken = [Path(n).stem for n in done]
    count = taken.count(stem)
    return f"{stem}.png" if not count else f"{stem}-{count + 1}.png"
