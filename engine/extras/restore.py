"""Restore faces after a picture is made, changing only the pixels around each detected face."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from engine.extras.restorers import load_restorer, restorer_files
from engine.faces.detect import detect_faces, usable
from engine.faces.landmarks import five_points, template
from engine.text.limits import excerpt

SIDE = 512
"""Side, in pixels, of the aligned face crop the restorers work on."""

MARGIN = 1.8
"""Crop side as a multiple of the detected face box, so hair and chin reach the restorer too."""


def list_restorers(weights_dir: Path) -> list[str]:
    """Names of the restorers found: "GFPGAN", "CodeFormer", "RestoreFormer" when a file stem names
    that family, otherwise the file stem itself; searched in weights/GFPGAN and weights/Codeformer."""
    return sorted(restorer_files(Path(weights_dir)))


def check_restorer(name: str, visibility: float, weights_dir: Path) -> None:
    """Refuse a bad restorer or visibility before any generation, with one sentence saying what to do."""
    if isinstance(visibility, bool) or not isinstance(visibility, (int, float)) or not 0 <= visibility <= 1:
        raise ValueError(f"Set the face restoration visibility between 0 and 1, not {excerpt(visibility)}.")
    files = restorer_files(Path(weights_dir))
    if name not in files:
        found = ", ".join(sorted(files)) or "none"
        raise ValueError(f"No face restorer named {excerpt(name)} was found (found: {found}); put its file in "
                         "weights/GFPGAN or weights/Codeformer.")
    load_restorer(files[name])


def restore_faces(
    image: Image.Image, name: str, visibility: float, *, weights_dir: Path, device: str | None = None
) -> Image.Image:
    """Blend each face's restored version back by `visibility`, so the rest of the picture stays as made."""
    check_restorer(name, visibility, weights_dir)
    boxes = [face.box for face in detect_faces(image) if usable(face)]
    return restore_boxes(image, boxes, name, visibility, weights_dir=weights_dir, device=device)


def restore_boxes(
    image: Image.Image, boxes: list[tuple[int, int, int, int]], name: str, visibility: float, *,
    weights_dir: Path, device: str | None = None,
) -> Image.Image:
    """Restore faces whose boxes the caller already knows, as the face jobs do on their regenerated crop."""
    check_restorer(name, visibility, weights_dir)
    model = load_restorer(restorer_files(Path(weights_dir))[name])
    if visibility == 0 or not boxes:
        return image.copy()
    pixels = np.asarray(image.convert("RGB"))
    photo = pixels.astype(np.float32) / 255.0
    result = photo.copy()
    for box in boxes:
        matrix = face_matrix(pixels, box)
        crop = cv2.warpAffine(photo, matrix, (SIDE, SIDE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        restored = _run(model, crop, device)
        result = paste_face(result, restored, matrix, visibility)
    out = np.clip(np.rint(result * 255.0), 0, 255).astype(np.uint8)
    pasted = Image.fromarray(out)
    return pasted.convert(image.mode) if image.mode != "RGB" else pasted


def crop_matrix(box: tuple[int, int, int, int]) -> np.ndarray:
    """Similarity transform from photo pixels to the square crop centred on a face box."""
    left, top, right, bottom = box
    centre_x, centre_y = (left + right) / 2, (top + bottom) / 2
    scale = SIDE / (MARGIN * max(right - left, bottom - top))
    return np.float32([[scale, 0, SIDE / 2 - scale * centre_x], [0, scale, SIDE / 2 - scale * centre_y]])


def face_matrix(pixels: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The face aligned on FFHQ's five-point template when dlib's landmarks are installed and agree with the
    box (eyes level, the face at the size restorers were trained on), else the square crop around the box."""
    points = five_points(pixels, box)
    boxed = crop_matrix(box)
    if points is None:
        return boxed
    matrix, _ = cv2.estimateAffinePartial2D(points, template(SIDE), method=cv2.LMEDS)
    if matrix is None:
        return boxed
    scale, box_scale = float(np.hypot(*matrix[0, :2])), float(boxed[0, 0])
    return matrix.astype(np.float32) if 0.5 < scale / box_scale < 2.0 else boxed


def crop_mask() -> np.ndarray:
    """Feathered square in crop space: 1 in the middle, falling to exactly 0 before the crop's edge."""
    mask = np.zeros((SIDE, SIDE), np.float32)
    edge = SIDE // 10
    mask[edge:-edge, edge:-edge] = 1.0
    return cv2.GaussianBlur(mask, (0, 0), SIDE / 40)


def paste_face(photo: np.ndarray, restored: np.ndarray, matrix: np.ndarray, visibility: float) -> np.ndarray:
    """Warp a restored crop back and blend it in through the feathered mask; pixels outside stay exact."""
    height, width = photo.shape[:2]
    inverse = cv2.invertAffineTransform(matrix)
    back = cv2.warpAffine(restored, inverse, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)
    weight = cv2.warpAffine(crop_mask(), inverse, (width, height), flags=cv2.INTER_LINEAR, borderValue=0)
    weight = weight * float(visibility)
    result = photo.copy()
    inside = weight > 0
    alpha = weight[inside][:, None]
    result[inside] = photo[inside] * (1 - alpha) + back[inside] * alpha
    return result


def _run(model, crop: np.ndarray, device: str | None) -> np.ndarray:
    """Run the restorer on one 512x512 RGB crop in 0-1 floats."""
    import torch

    target = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(target)
    tensor = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None].to(target)
    with torch.inference_mode():
        output = model(tensor)
    return output[0].clamp(0, 1).float().cpu().numpy().transpose(1, 2, 0)
