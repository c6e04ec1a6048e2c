"""Find faces offline and outline the face-and-hair area, so aging and gender swap repaint only the person.

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

import functools
import importlib.util
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engine.files.images import ImageSource, load_image
from engine.image.masks import blur_mask

MIN_FACE = 64
"""Smallest face side, in pixels, that the face features work on (defaults to 64).

The square region around a 64-pixel face is about 130 pixels; SD 1.5 repaints it at 512, so a
smaller face would be upscaled more than 4x and its new detail lost again on paste-back.
"""

DETECT_SIDE = 1024
"""Longest side, in pixels, of the copy the detector searches. Larger photos are shrunk first, so
faces smaller than about `long side / 40` pixels (96 on a 4096-pixel photo) may be missed."""

SAME_PERSON = 0.6
"""`identity_distance` at or below this means the same person (dlib's published threshold)."""

NO_FACE = (
    "No face was found in the photo; use a clear, front-facing photo or process the whole photo instead."
)

_PRIMARY = "haarcascade_frontalface_default.xml"
_CONFIRM = "haarcascade_frontalface_alt2.xml"
_EYES = ("haarcascade_eye.xml", "haarcascade_eye_tree_eyeglasses.xml")
_NEIGHBOURS = 3  # raw windows a cascade must group; the checks in _judge filter the weak ones
_STRONG_VOTES = 25  # primary votes that stand in for one missing check (sunglasses, a tilted head)
_SEARCH_FLOOR = MIN_FACE // 2  # smallest face, in photo pixels, worth reporting as "too small"
_OVERLAP = 0.3  # intersection-over-union at which two boxes are the same face
_HAIR_SHARE = 0.6  # share of the square's extra height put above the face (the rest is below)
_MASK_WIDTH = 0.84  # ellipse width as a share of the region side: hair is narrower than tall

_THREAD_CASCADES = threading.local()  # the Haar models, loaded once per thread
_IDENTITY_LOCK = threading.Lock()  # dlib's models keep scratch buffers, so one comparison at a time


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


def face_region(face: Face, image_size: tuple[int, int], padding: float = 0.5) -> tuple[int, int, int, int]:
    """Square box to regenerate: the face grown to take in hair and neck, kept inside the photo.

    padding (`float`, *optional*, defaults to 0.5): fraction of the face size added on each side,
    0 to 2; 60% of the extra height goes above the face for hair. The square is shifted to stay
    inside the image, and shrunk to the image's shorter side when it would not fit. Returns
    (left, top, right, bottom), right and bottom exclusive.
    """
    width, height = _check_size(image_size)
    _check_face(face, width, height)
    ok = isinstance(padding, (int, float, np.integer, np.floating)) and not isinstance(padding, bool)
    if not ok or not math.isfinite(padding) or not 0 <= padding <= 2:
        raise ValueError(f"Pass a face padding between 0 and 2 (a fraction of the face size), not {padding!r}.")
    size = max(face.width, face.height)
    side = min(round(size * (1 + 2 * padding)), width, height)
    left = round(face.x + face.width / 2 - side / 2)
    top = round(face.y - _HAIR_SHARE * (side - face.height))
    left = min(max(left, 0), width - side)
    top = min(max(top, 0), height - side)
    return left, top, left + side, top + side


def face_mask(
    face: Face, image_size: tuple[int, int], region: tuple[int, int, int, int], feather: int | None = None
) -> Image.Image:
    """Soft ellipse over face, hair and a little neck, so the repaint blends in and nothing else changes.

    feather (`int`, *optional*, defaults to None: the region side / 48): Gaussian blur radius in
    pixels. The ellipse is sized from the face and the region side, so it grows with `padding`;
    a wider feather shrinks it so the fade still ends inside the region (raise `padding` with it).
    Returns an "L" image the size of the photo: 255 over the face centre, exactly 0 everywhere
    outside `region`, so `masks.paste_back(photo, generated, region, mask)` leaves those pixels as
    they were.
    """
    # 1. check inputs
    width, height = _check_size(image_size)
    _check_face(face, width, height)
    left, top, right, bottom = _check_region(region, width, height)
    side = right - left
    if feather is None:
        feather = max(1, round(side / 48))
    if isinstance(feather, bool) or not isinstance(feather, (int, np.integer)) or feather < 0:
        raise ValueError(f"Pass the mask feather as a whole number of pixels, 0 or more, not {feather!r}.")
    face_size = max(face.width, face.height)
    axes = _ellipse_axes(side, face_size, feather)
    if axes is None:
        limit = next((f for f in range(feather, -1, -1) if _ellipse_axes(side, face_size, f)), 0)
        raise ValueError(f"A feather of {feather} pixels is too wide for this region; use at most {limit}.")
    half_width, half_height = axes
    reach = _reach(feather)

    # 2. ellipse inside the ideal square (the one face_region centres on the face before clamping)
    centre_x = face.x + face.width / 2
    centre_y = face.y - _HAIR_SHARE * (side - face.height) + side / 2
    values = np.zeros((height, width), np.uint8)
    cv2.ellipse(
        values, (round(centre_x), round(centre_y)), (round(half_width), round(half_height)), 0, 0, 360, 255, -1
    )

    # 3. keep the blur inside the region: cut back from inner edges, blur, zero the outside
    inner = np.zeros_like(values)
    inner[
        top + (reach if top > 0 else 0) : bottom - (reach if bottom < height else 0),
        left + (reach if left > 0 else 0) : right - (reach if right < width else 0),
    ] = 1
    soft = np.asarray(blur_mask(Image.fromarray(values * inner, "L"), feather))
    outside = np.ones_like(values, bool)
    outside[top:bottom, left:right] = False
    return Image.fromarray(np.where(outside, 0, soft).astype(np.uint8), "L")


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


def identity_distance(a: ImageSource, b: ImageSource) -> float | None:
    """How far apart two faces are by dlib's ResNet embedding, so a feature can check the person was kept.

    Compares the largest face in each image; at or below `SAME_PERSON` (0.6) means the same person.
    Returns None when it cannot measure, so a finished run never fails on this optional check: the
    packages are not installed (`pip install dlib-bin face-recognition-models`) or an image has no face.
    """
    models = _identity_models()
    if models is None:
        return None
    with _IDENTITY_LOCK:
        first, second = (_embedding(models, image) for image in (a, b))
    return None if first is None or second is None else float(np.linalg.norm(first - second))


def identity_available() -> bool:
    """Tell whether `identity_distance` can measure at all (dlib and its face models are installed)."""
    return _identity_models() is not None


def face_identity_distance(original: ImageSource, result: ImageSource, face: Face,
                           region: tuple[int, int, int, int] | None = None) -> float | None:
    """How far the edited face is from the same face in the input, so a check never reads another person.

    Both images are cropped to `region` (defaults to the whole image) and compared on the face found
    where `face` is: the input is measured on `face` itself, the result on a face detected at that place
    (its box overlapping `face` by at least 30%). Returns None when nothing can be measured: the dlib
    packages are missing (see `identity_available`) or no face is found there in the result; a face
    turned to noise therefore gives None, never a small distance.
    """
    models = _identity_models()
    if models is None:
        return None
    first, second = load_image(original), load_image(result)
    if first.size != second.size:
        raise ValueError(f"The result is {second.size} but the photo is {first.size}; compare images of one size.")
    box = region or (0, 0, *first.size)
    shifted = Face(face.x - box[0], face.y - box[1], face.width, face.height, face.score)
    with _IDENTITY_LOCK:
        before = _embedding_at(models, first.crop(box), shifted, must_find=False)
        after = _embedding_at(models, second.crop(box), shifted, must_find=True)
    return None if before is None or after is None else float(np.linalg.norm(before - after))


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
        overlap = _iou(box, other)
        if overlap >= _OVERLAP and (best is None or overlap > best[0]):
            best = (overlap, other, int(count))
    return None if best is None else (best[1], best[2])


def _merge(found: list[tuple[tuple, float]]) -> list[tuple[tuple, float]]:
    """Keep the best-voted box of each overlapping or nested group."""
    kept: list[tuple[tuple, float]] = []
    for box, score in sorted(found, key=lambda item: (-item[1], item[0])):
        if not any(_iou(box, other) >= _OVERLAP or _nested(box, other) for other, _ in kept):
            kept.append((box, score))
    return kept


def _iou(a, b) -> float:
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


def _check_size(image_size) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"Pass the image size as (width, height) in pixels, not {image_size!r}.") from None
    if width < 1 or height < 1:
        raise ValueError(f"Pass an image size of at least 1x1 pixels, not {image_size!r}.")
    return width, height


def _check_face(face: Face, width: int, height: int) -> None:
    left, top, right, bottom = face.box
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise ValueError(f"The face {face.box} lies outside the {width}x{height} image; detect faces on this image.")


def _check_region(region, width: int, height: int) -> tuple[int, int, int, int]:
    try:
        left, top, right, bottom = (int(v) for v in region)
    except (TypeError, ValueError):
        raise ValueError(f"Pass the region as (left, top, right, bottom), not {region!r}.") from None
    if not (0 <= left < right <= width and 0 <= top < bottom <= height) or right - left != bottom - top:
        raise ValueError(
            f"The region {region!r} is not a square inside the {width}x{height} image; make it with face_region."
        )
    return left, top, right, bottom


# --- mask helpers ---------------------------------------------------------------------------


def _reach(feather: int) -> int:
    """How far `blur_mask` spreads a mask edge (its kernel half-width), plus one pixel."""
    return int(2.5 * feather + 0.5) + 1 if feather else 0


def _ellipse_axes(side: int, face_size: int, feather: int) -> tuple[float, float] | None:
    """Half-width and half-height of the mask ellipse, or None when the feather leaves too little of it."""
    half_height = side / 2 - _reach(feather)
    half_width = min(_MASK_WIDTH * side / 2, half_height)
    return None if half_width < face_size / 4 else (half_width, half_height)


# --- identity (optional dlib) ---------------------------------------------------------------


def _identity_models():
    """dlib's detector, 5-point landmarks and ResNet embedding, or None when not installed."""
    try:
        import dlib  # noqa: F401  (only to see that it is installed)
    except ImportError:
        return None
    # find_spec locates the package without running its __init__, which needs the removed pkg_resources
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    if not (folder / "dlib_face_recognition_resnet_model_v1.dat").is_file():
        return None
    return _load_identity_models(str(folder))


@functools.lru_cache(maxsize=1)
def _load_identity_models(folder: str):
    import dlib

    return (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(os.path.join(folder, "shape_predictor_5_face_landmarks.dat")),
        dlib.face_recognition_model_v1(os.path.join(folder, "dlib_face_recognition_resnet_model_v1.dat")),
    )


def _embedding(models, image: ImageSource) -> np.ndarray | None:
    """128-number embedding of the largest face `detect_faces` finds, aligned on dlib's own box when it agrees."""
    import dlib

    detector, landmarks, encoder = models
    photo = load_image(image)
    scale = min(1.0, DETECT_SIDE / max(photo.size))
    if scale < 1.0:
        photo = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.LANCZOS)
    pixels = np.ascontiguousarray(np.asarray(photo))
    rects, scores, _ = detector.run(pixels, 1, 0)
    ranked = [rect for _, rect in sorted(zip(scores, rects), key=lambda item: -item[0])]
    faces = detect_faces(photo)
    if faces:
        x, y, w, h = faces[0].x, faces[0].y, faces[0].width, faces[0].height
        agreeing = [r for r in ranked if _iou((x, y, w, h), (r.left(), r.top(), r.width(), r.height())) >= _OVERLAP]
        rect = agreeing[0] if agreeing else dlib.rectangle(x, y, x + w - 1, y + h - 1)
    elif ranked:
        rect = ranked[0]
    else:
        return None
    return np.asarray(encoder.compute_face_descriptor(pixels, landmarks(pixels, rect), 1))


def _embedding_at(models, image: Image.Image, face: Face, must_find: bool) -> np.ndarray | None:
    """Embedding of the face at `face`'s place: dlib's or the cascades' box that overlaps it, else `face`
    itself unless `must_find` (then None: the result has no face there)."""
    import dlib

    detector, landmarks, encoder = models
    scale = min(1.0, DETECT_SIDE / max(image.size))
    if scale < 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    target = tuple(round(v * scale) for v in (face.x, face.y, face.width, face.height))
    pixels = np.ascontiguousarray(np.asarray(image.convert("RGB")))
    rects, scores, _ = detector.run(pixels, 1, 0)
    candidates = [(r.left(), r.top(), r.width(), r.height())
                  for _, r in sorted(zip(scores, rects), key=lambda item: -item[0])]
    candidates += [(f.x, f.y, f.width, f.height) for f in detect_faces(image)]
    overlapping = [c for c in candidates if _iou(target, c) >= _OVERLAP]
    if overlapping:
        x, y, w, h = overlapping[0]
    elif must_find:
        return None
    else:
        x, y, w, h = target
    rect = dlib.rectangle(int(x), int(y), int(x + w - 1), int(y + h - 1))
    return np.asarray(encoder.compute_face_descriptor(pixels, landmarks(pixels, rect), 1))
