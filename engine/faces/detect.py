"""Find faces offline, so aging and gender swap repaint only the person (engine.faces.region outlines the area).

Detection uses the Haar cascades that ship inside opencv-python-headless (<5; OpenCV 5 dropped
`CascadeClassifier`), so nothing is downloaded. The flow a feature follows:

    faces = detect_faces(photo)
    face, note = pick_face(faces, index)          # ValueError with a plain sentence
    region = face_region(face, photo.size)         # square crop to regenerate
    mask = face_mask(face, photo.size, region)     # soft ellipse, 0 outside `region`
    ... regenerate photo.crop(region) ...
    result = masks.paste_back(photo, generated, region, mask)

Every pixel where `mask` is 0 comes back from `paste_back` identical to `photo`.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engine.files.images import ImageSource, load_image

MIN_FACE = 64
"""Smallest face side, in pixels, that the face features work on (defaults to 64).

The square region around a 64-pixel face is about 130 pixels; SD 1.5 repaints it at 512, so a
smaller face would be upscaled more than 4x and its new detail lost again on paste-back.
"""

DETECT_SIDE = 1024
"""Longest side, in pixels, of the copy the detector searches. Larger photos are shrunk first, so
faces smaller than about `long side / 40` pixels (96 on a 4096-pixel photo) may be missed."""

NO_FACE = (
    "No face was found in the photo; use a clear, front-facing photo or process the whole photo instead."
)

_PRIMARY = "haarcascade_frontalface_default.xml"
_CONFIRM = "haarcascade_frontalface_alt2.xml"
_EYES = ("haarcascade_eye.xml", "haarcascade_eye_tree_eyeglasses.xml")
_NEIGHBOURS = 3  # raw windows a cascade must group; the checks in _judge filter the weak ones
_STRONG_VOTES = 25  # primary votes that stand in for one missing check (sunglasses, a tilted head)
_SEARCH_FLOOR = MIN_FACE // 2  # smallest face, in photo pixels, worth reporting as "too small"
OVERLAP = 0.3  # intersection-over-union at which two boxes are the same face

_THREAD_CASCADES = threading.local()  # the Haar models, loaded once per thread


@dataclass(frozen=True)
class Face:
    """One detected face; x, y, width and height are in photo pixels (top-left origin)."""

    x: int
    y: int
    width: int
    height: int
    score: float
    """Detector votes: overlapping windows the cascades grouped into this face; higher is surer, and
    clear faces usually score 20 or more."""

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom), right and bottom exclusive as for `PIL.Image.crop`."""
        return self.x, self.y, self.x + self.width, self.y + self.height

    @property
    def area(self) -> int:
        return self.width * self.height


def usable(face: Face) -> bool:
    """Tell whether a face is big enough to regenerate (both sides at least `MIN_FACE`)."""
    return min(face.width, face.height) >= MIN_FACE


def detect_faces(image: ImageSource) -> list[Face]:
    """Find front-facing faces, largest first, so a feature can work on one person and leave the rest.

    Deterministic. Upright faces tilted up to about 15 degrees are found; profiles are not. Faces
    smaller than `MIN_FACE` are returned too (see `usable`) so the caller can say "too small".
    """
    # 1. grey copy, shrunk so the longest side is at most DETECT_SIDE
    grey = np.asarray(load_image(image).convert("L"))
    height, width = grey.shape
    scale = min(1.0, DETECT_SIDE / max(width, height))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    scale_x, scale_y = width / grey.shape[1], height / grey.shape[0]

    # 2. candidates from the primary cascade, kept when two of three checks back them (see _judge)
    floor = max(24, math.ceil(_SEARCH_FLOOR / max(scale_x, scale_y)))
    boxes, votes = _cascade(_PRIMARY).detectMultiScale2(grey, 1.1, _NEIGHBOURS, minSize=(floor, floor))
    candidates = zip(np.asarray(boxes).reshape(-1, 4).tolist(), np.ravel(votes).tolist())
    found = [face for face in (_judge(grey, box, count) for box, count in candidates) if face is not None]

    # 3. merge duplicates, map back to photo pixels, sort largest first
    faces = [_to_face(box, score, scale_x, scale_y, width, height) for box, score in _merge(found)]
    return sorted(faces, key=lambda f: (-f.area, -f.score, f.y, f.x))


def pick_face(faces: list[Face], index: int | None = None) -> tuple[Face, str | None]:
    """Choose the face to work on and say which one, so several people in a photo never cause a failure.

    `index` counts from 0 in `detect_faces` order (defaults to None: the largest face); notes and
    errors number faces from 1, as `draw_faces` labels them. The note is None when one face was found.
    """
    count = len(faces)
    if count == 0:
        raise ValueError(NO_FACE)
    if index is not None:
        whole = isinstance(index, (int, np.integer)) and not isinstance(index, bool)
        if not whole:
            raise ValueError(f"Pass the face index as a whole number counting from 0, not {index!r}.")
        if index < 0:
            raise ValueError(f"Pass a face index of 0 or more (face 1 is index 0), not {index}.")
        if index >= count:
            found = "only 1 face was" if count == 1 else f"only {count} faces were"
            raise ValueError(f"Face {index + 1} was asked for but {found} found; pick a face from 1 to {count}.")
    chosen = 0 if index is None else int(index)
    face = faces[chosen]
    if not usable(face):
        side = min(face.width, face.height)
        which = "The face" if count == 1 else f"Face {chosen + 1}"
        remedy = "pick a larger face or use" if any(usable(other) for other in faces) else "use"
        raise ValueError(
            f"{which} is only {side} pixels across, below the {MIN_FACE}-pixel minimum; "
            f"{remedy} a closer or higher-resolution photo."
        )
    if count == 1:
        return face, None
    used = "face 1 (the largest)" if chosen == 0 else f"face {chosen + 1}"
    return face, f"{count} faces were found; {used} was used."


def draw_faces(image: ImageSource, faces: list[Face], chosen: int = 0) -> Image.Image:
    """Preview with numbered boxes, the chosen one highlighted, so the user can pick another face.

    chosen (`int`, *optional*, defaults to 0): index in `faces` to highlight. Faces too small to use
    are drawn in red and labelled "too small".
    """
    preview = load_image(image)
    if not faces:
        return preview
    if isinstance(chosen, bool) or not isinstance(chosen, (int, np.integer)) or not 0 <= chosen < len(faces):
        raise ValueError(f"Pick a face number from 1 to {len(faces)} to highlight, not {chosen!r}.")
    # Labels scale with the photo (about 1/18 of its longer side), so they stay readable when the preview
    # is shown a few hundred pixels wide: a 2000-px photo gets 111-px labels.
    line = max(2, round(max(preview.size) / 300))
    font = ImageFont.load_default(size=max(12, round(max(preview.size) / 18)))
    draw = ImageDraw.Draw(preview)
    for number, face in enumerate(faces, start=1):
        colour = (0, 230, 64) if number == chosen + 1 else (255, 210, 0)
        label = str(number)
        if not usable(face):
            colour, label = (230, 30, 30), f"{number} too small"
        left, top, right, bottom = face.box
        thickness = line * 2 if number == chosen + 1 else line
        draw.rectangle((left, top, right - 1, bottom - 1), outline=colour, width=thickness)
        text_box = draw.textbbox((0, 0), label, font=font)
        text_w, text_h = text_box[2] - text_box[0] + 2 * line, text_box[3] - text_box[1] + 2 * line
        label_top = top - text_h if top >= text_h else top
        draw.rectangle((left, label_top, left + text_w, label_top + text_h), fill=colour)
        draw.text((left + line - text_box[0], label_top + line - text_box[1]), label, fill=(0, 0, 0), font=font)
    return preview


# --- detection helpers ----------------------------------------------------------------------


def _cascade(name: str) -> cv2.CascadeClassifier:
    """One loaded cascade per thread: OpenCV does not promise that a shared one is safe across threads."""
    loaded = _THREAD_CASCADES.__dict__.setdefault("by_name", {})
    if name not in loaded:
        cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, name))
        if cascade.empty():
            raise ValueError(f"OpenCV's {name} could not be loaded; reinstall opencv-python-headless<5.")
        loaded[name] = cascade
    return loaded[name]


def _judge(grey: np.ndarray, box, votes: int) -> tuple[tuple, float] | None:
    """Keep a primary-cascade candidate that two of three checks back: second cascade, eyes, many votes."""
    confirmed = _confirm(grey, box)
    checks = (confirmed is not None) + (votes >= _STRONG_VOTES) + _has_eyes(grey, box)
    if checks < 2:
        return None
    if confirmed is None:
        return tuple(box), float(votes)
    return _average(box, confirmed[0]), float(votes + confirmed[1])


def _has_eyes(grey: np.ndarray, box) -> bool:
    """Look for an eye in the upper part of the box, at a fixed size so small faces work too."""
    x, y, w, h = box
    upper = grey[y : y + h * 6 // 10, x : x + w]
    smooth = cv2.INTER_AREA if w > 120 else cv2.INTER_CUBIC
    upper = cv2.resize(upper, (120, 72), interpolation=smooth)
    return any(len(_cascade(name).detectMultiScale(upper, 1.1, 3, minSize=(15, 15))) for name in _EYES)


def _confirm(grey: np.ndarray, box) -> tuple[tuple[int, int, int, int], int] | None:
    """Run the second cascade around one candidate; return its best overlapping box and votes."""
    x, y, w, h = box
    left, top = max(0, x - w // 2), max(0, y - h // 2)
    crop = grey[top : y + h + h // 2, left : x + w + w // 2]
    smallest, largest = max(20, round(w * 0.6)), round(w * 1.6)
    found, votes = _cascade(_CONFIRM).detectMultiScale2(
        crop, 1.1, _NEIGHBOURS, minSize=(smallest, smallest), maxSize=(largest, largest)
    )
    best = None
    for (cx, cy, cw, ch), count in zip(np.asarray(found).reshape(-1, 4).tolist(), np.ravel(votes).tolist()):
        other = (cx + left, cy + top, cw, ch)
        overlap = iou(box, other)
        if overlap >= OVERLAP and (best is None or overlap > best[0]):
            best = (overlap, other, int(count))
    return None if best is None else (best[1], best[2])


def _merge(found: list[tuple[tuple, float]]) -> list[tuple[tuple, float]]:
    """Keep the best-voted box of each overlapping or nested group."""
    kept: list[tuple[tuple, float]] = []
    for box, score in sorted(found, key=lambda item: (-item[1], item[0])):
        if not any(iou(box, other) >= OVERLAP or _nested(box, other) for other, _ in kept):
            kept.append((box, score))
    return kept


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    overlap_w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    overlap_h = max(0, min(ay + ah, by + bh) - max(ay, by))
    shared = overlap_w * overlap_h
    return shared / (aw * ah + bw * bh - shared)


def _nested(a, b) -> bool:
    """True when either box's centre lies inside the other."""

    def inside(box, point) -> bool:
        return box[0] <= point[0] < box[0] + box[2] and box[1] <= point[1] < box[1] + box[3]

    return inside(a, (b[0] + b[2] / 2, b[1] + b[3] / 2)) or inside(b, (a[0] + a[2] / 2, a[1] + a[3] / 2))


def _average(a, b) -> tuple[float, float, float, float]:
    return tuple((p + q) / 2 for p, q in zip(a, b))


def _to_face(box, score: float, scale_x: float, scale_y: float, width: int, height: int) -> Face:
    x, y, w, h = box
    left, top = max(0, round(x * scale_x)), max(0, round(y * scale_y))
    right, bottom = min(width, round((x + w) * scale_x)), min(height, round((y + h) * scale_y))
    return Face(left, top, right - left, bottom - top, score)
