"""Five landmarks of a face (dlib's eye corners and the base of the nose), so a face restorer sees the face
aligned the way it was trained on FFHQ, tilted heads included. Optional and offline: with dlib and
face-recognition-models installed; without them callers fall back to the face box."""
from __future__ import annotations

import functools
import importlib.util
import threading
from pathlib import Path

import numpy as np

FFHQ_FIVE_1024 = np.float32([[686.77227723, 488.62376238], [586.77227723, 493.59405941],
                             [337.91089109, 488.38613861], [437.95049505, 493.51485149],
                             [513.58415842, 678.5049505]])
"""Where dlib's five points sit in FFHQ's 1024-px aligned faces (the template face restorers are trained on)."""

_LOCK = threading.Lock()  # dlib's predictor keeps scratch buffers


def dlib_models_folder() -> Path | None:
    """face-recognition-models' folder of dlib model files, or None when dlib or the models are missing."""
    try:
        import dlib  # noqa: F401  (only to see that it is installed)
    except ImportError:
        return None
    # find_spec locates the package without running its __init__, which needs the removed pkg_resources
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "models"
    return folder if folder.is_dir() else None


@functools.lru_cache(maxsize=1)
def _predictor():
    folder = dlib_models_folder()
    path = folder / "shape_predictor_5_face_landmarks.dat" if folder else None
    if path is None or not path.is_file():
        return None
    import dlib

    return dlib.shape_predictor(str(path))


def five_points(pixels: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray | None:
    """dlib's five points (x, y) of the face in `box` (left, top, right, bottom) of RGB uint8 `pixels`,
    or None when dlib's predictor is not installed."""
    predictor = _predictor()
    if predictor is None:
        return None
    import dlib

    left, top, right, bottom = (int(v) for v in box)
    with _LOCK:
        shape = predictor(np.ascontiguousarray(pixels), dlib.rectangle(left, top, right - 1, bottom - 1))
    return np.float32([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)])


def template(side: int) -> np.ndarray:
    """The FFHQ five-point template for a `side`-px aligned face."""
    return FFHQ_FIVE_1024 * (side / 1024)
