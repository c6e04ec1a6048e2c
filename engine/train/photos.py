"""The training photos: read from a folder or a zip, checked, and cropped to squares at the training size."""
from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps

from engine.files.images import load_image
from engine.train.crops import Box, box_in_crop, centre_square, face_square, mirror_box
from engine.train.request import is_person

MIN_PHOTOS, MAX_PHOTOS = 3, 50
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
CAPTION_SUFFIX = ".txt"
MAX_MEMBER_BYTES = 64 * 2**20  # a zip member larger than this is refused unread (zip bombs)


@dataclass
class Photo:
    """One prepared photo: a square at the training size, its caption, and where the face is in it."""

    name: str  # the file's name, as the user gave it
    image: Image.Image  # RGB, resolution x resolution
    caption: str = ""  # from the same-name .txt file, else empty
    face_box: Box | None = None  # in crop pixels; None for other subjects
    small: bool = False  # the source was smaller than the training size (upscaled)

    def mirrored(self) -> Photo:
        """The horizontally flipped photo, face box included."""
        box = mirror_box(self.face_box, self.image.width) if self.face_box else None
        return Photo(self.name + " (flipped)", ImageOps.mirror(self.image), self.caption, box, self.small)


@dataclass
class PhotoSet:
    """The photos that go on, the ones left out for having no face, and notes worth telling the user."""

    photos: list[Photo]
    no_face: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_files(source: Path) -> dict[str, bytes]:
    """Name -> bytes for the files in a folder (not its subfolders) or a zip; hidden and system files skipped."""
    source = Path(source)
    if source.is_dir():
        return {p.name: p.read_bytes() for p in sorted(source.iterdir()) if p.is_file() and not p.name.startswith(".")}
    if source.is_file() and zipfile.is_zipfile(source):
        files = {}
        with zipfile.ZipFile(source) as archive:
            for info in archive.infolist():
                name = Path(info.filename).name
                if info.is_dir() or name.startswith(".") or "__MACOSX" in info.filename:
                    continue
                if info.file_size > MAX_MEMBER_BYTES:
                    raise ValueError(f"{name} in the zip is larger than {MAX_MEMBER_BYTES // 2**20} MB; "
                                     "use smaller photos.")
                if name in files:
                    raise ValueError(f"The zip holds two files named {name}; give each photo its own name.")
                files[name] = archive.read(info)
        return files
    if source.is_file():
        raise ValueError(f"{source.name} is neither a folder nor a zip; give a folder of photos or a .zip of them.")
    raise ValueError(f"{source} was not found; give a folder of photos or a .zip of them.")


def read_photos(source: Path, captions: dict[str, str] | None = None) -> list[tuple[str, Image.Image, str]]:
    """(name, image, caption) for each photo; non-images, duplicates and too few or too many are refused."""
    files = read_files(source)
    texts = {Path(n).stem: data.decode("utf-8", "replace").strip()
             for n, data in files.items() if n.lower().endswith(CAPTION_SUFFIX)}
    texts.update({Path(n).stem: text.strip() for n, text in (captions or {}).items()})
    names = sorted(n for n in files if not n.lower().endswith(CAPTION_SUFFIX))
    foreign = [n for n in names if not n.lower().endswith(IMAGE_SUFFIXES)]
    if foreign:
        raise ValueError(f"{_listed(foreign)} {'is' if len(foreign) == 1 else 'are'} not "
                         f"{'an image' if len(foreign) == 1 else 'images'} (PNG, JPEG or WebP); remove "
                         f"{'it' if len(foreign) == 1 else 'them'} or keep only photos and .txt captions.")
    if len(names) < MIN_PHOTOS:
        raise ValueError(f"Training needs at least {MIN_PHOTOS} photos of the subject; got {len(names)}.")
    if len(names) > MAX_PHOTOS:
        raise ValueError(f"Training takes at most {MAX_PHOTOS} photos; got {len(names)}: keep the best ones.")
    photos, seen = [], {}
    for name in names:
        try:
            image = load_image(files[name])
        except ValueError:
            raise ValueError(f"{name} is not an image Diffusion Studio can read (PNG, JPEG or WebP), or it is "
                             "damaged; remove it or save it again.") from None
        digest = hashlib.sha256(f"{image.size}".encode() + image.tobytes()).hexdigest()
        if digest in seen:
            raise ValueError(f"{name} is the same picture as {seen[digest]}; remove one of them.")
        seen[digest] = name
        photos.append((name, image, texts.get(Path(name).stem, "")))
    return photos


def prepare_photos(source: Path, class_word: str, resolution: int,
                   captions: dict[str, str] | None = None) -> PhotoSet:
    """Square crops at `resolution`: around the largest face for a person class, centred for other subjects.

    Person photos with no face found are left out and listed; fewer than 3 left is refused.
    """
    person = is_person(class_word)
    prepared, no_face, small = [], [], []
    for name, image, caption in read_photos(source, captions):
        face = _largest_face(image) if person else None
        if person and face is None:
            no_face.append(name)
            continue
        crop = face_square(face, *image.size) if face else centre_square(*image.size)
        side = crop[2] - crop[0]
        square = image.crop(crop).resize((resolution, resolution), Image.Resampling.LANCZOS)
        box = box_in_crop(face, crop, resolution) if face else None
        prepared.append(Photo(name, square, caption, box, side < resolution))
        if side < resolution:
            small.append(f"{name} ({side} px)")
    notes = []
    if no_face:
        notes.append(f"No face was found in {_listed(no_face)}; {'it was' if len(no_face) == 1 else 'they were'} "
                     "left out.")
    if small:
        notes.append(f"{_listed(small)} {'is' if len(small) == 1 else 'are'} smaller than the training size "
                     f"{resolution} px and {'was' if len(small) == 1 else 'were'} upscaled; larger photos give "
                     "sharper results.")
    if len(prepared) < MIN_PHOTOS:
        raise ValueError(f"Only {len(prepared)} photo{'s' * (len(prepared) != 1)} with a face "
                         f"{'is' if len(prepared) == 1 else 'are'} left (no face in {_listed(no_face)}); training "
                         f"needs at least {MIN_PHOTOS}: add clear, front-facing photos.")
    return PhotoSet(prepared, no_face, notes)


def _largest_face(image: Image.Image) -> Box | None:
    from engine.faces.detect import detect_faces

    faces = detect_faces(image)
    return faces[0].box if faces else None


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"

