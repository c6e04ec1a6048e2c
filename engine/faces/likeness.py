"""Whether an edited face is still the same person, by dlib's face embedding (optional, offline)."""
from __future__ import annotations

import functools
import os
import threading

import numpy as np
from PIL import Image

from engine.faces.detect import DETECT_SIDE, OVERLAP, Face, detect_faces, iou
from engine.faces.landmarks import dlib_models_folder
from engine.files.images import ImageSource, load_image

SAME_PERSON = 0.6
"""`identity_distance` at or below this means the same person (dlib's published threshold)."""

_IDENTITY_LOCK = threading.Lock()  # dlib's models keep scratch buffers, so one comparison at a time


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


def _identity_models():
    """dlib's detector, 5-point landmarks and ResNet embedding, or None when not installed."""
    folder = dlib_models_folder()
    if folder is None or not (folder / "dlib_face_recognition_resnet_model_v1.dat").is_file():
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
        agreeing = [r for r in ranked if iou((x, y, w, h), (r.left(), r.top(), r.width(), r.height())) >= OVERLAP]
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
    overlapping = [c for c in candidates if iou(target, c) >= OVERLAP]
    if overlapping:
        x, y, w, h = overlapping[0]
    elif must_find:
        return None
    else:
        x, y, w, h = target
    rect = dlib.rectangle(int(x), int(y), int(x + w - 1), int(y + h - 1))
    return np.asarray(encoder.compute_face_descriptor(pixels, landmarks(pixels, rect), 1))
