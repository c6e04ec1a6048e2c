"""Photos as they arrive from a browser or an HTTP form: gathered into one folder (or one zip), captions parsed."""
from __future__ import annotations

import zipfile
from io import BytesIO
from pathlib import Path


def gather_uploads(files: list[tuple[str, bytes]], folder: Path) -> Path:
    """The photos (and .txt captions) in `folder`, or the one zip given; a zip among other files is refused."""
    if not files:
        raise ValueError("Drop 3 to 50 photos of the subject, or one zip of them.")
    zips = [name for name, data in files if zipfile.is_zipfile(BytesIO(data))]
    if zips and len(files) > 1:
        raise ValueError(f"{zips[0]} is a zip: give one zip of the photos, or the photos themselves, not both.")
    folder.mkdir(parents=True, exist_ok=True)
    if zips:
        target = folder / "photos.zip"
        target.write_bytes(files[0][1])
        return target
    seen = set()
    for name, data in files:
        name = Path(name.replace("\\", "/")).name or "photo"
        if name.lower() in seen:
            raise ValueError(f"Two files are named {name}; give each photo its own name.")
        seen.add(name.lower())
        (folder / name).write_bytes(data)
    return folder


def parse_captions(text: str) -> dict[str, str]:
    """"photo.jpg: a caption" per line -> {"photo.jpg": "a caption"}; blank captions and lines are skipped."""
    captions = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, caption = line.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"Caption line {number} should read 'photo name: caption'; it reads {line.strip()[:60]!r}.")
        if caption.strip():
            captions[name.strip()] = caption.strip()
    return captions


def caption_lines(names: list[str], captions: dict[str, str]) -> str:
    """One "name: caption" line per photo, ready to fill in."""
    return "\n".join(f"{name}: {captions.get(name, '')}".rstrip() for name in names)


def apply_captions(photos: list, captions: dict[str, str]) -> list:
    """The prepared photos with the captions given by name (others keep theirs); unknown names are refused."""
    names = {photo.name for photo in photos}
    unknown = [name for name in captions if name not in names]
    if unknown:
        raise ValueError(f"There is a caption for {unknown[0]}, but no photo of that name; check the name before "
                         "the colon.")
    for photo in photos:
        photo.caption = captions.get(photo.name, photo.caption)
    return photos
