"""Camera moves as image warps, the way Deforum makes them.

2D: the previous frame is rotated by `angle` degrees and scaled by `zoom` around the centre, then shifted by
(translation_x, translation_y) pixels: `cv2.warpAffine` with the matrix `affine_matrix` returns.

3D: Deforum's (and Disco Diffusion's) depth warp. Every pixel (x, y in -1..1) sits at depth z; the camera moves by
translation x/y/z (in Deforum's units: 200 = one screen depth) and turns by rotation x/y/z degrees; each pixel is
projected through a perspective camera with the field of view `fov` before and after the move, and the image is
resampled by the difference. The depth map is warped along with the image, so a chain of warps needs the depth
model only once, on the frame it starts from.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from engine.text.limits import excerpt

BORDERS = ("replicate", "wrap", "reflect")
TRANSLATION_SCALE = 1.0 / 200.0  # Deforum's: translation_z 200 moves the camera one unit of depth
_CV2_BORDER = {"replicate": cv2.BORDER_REPLICATE, "wrap": cv2.BORDER_WRAP, "reflect": cv2.BORDER_REFLECT_101}


def check_border(border: str) -> str:
    """replicate, wrap or reflect, in any case."""
    value = str(border or "").strip().lower()
    if value not in BORDERS:
        raise ValueError(f"Border must be one of {', '.join(BORDERS)}; got {excerpt(border)}.")
    return value


def affine_matrix(width: int, height: int, zoom: float, angle: float, translation_x: float,
                  translation_y: float) -> np.ndarray:
    """Deforum's 2D move as a 2x3 matrix: translate, then rotate and zoom around the centre."""
    centre = (width // 2, height // 2)
    rotate = np.vstack([cv2.getRotationMatrix2D(centre, angle, zoom), [0, 0, 1]])
    shift = np.array([[1, 0, translation_x], [0, 1, translation_y], [0, 0, 1]], dtype=np.float64)
    return (rotate @ shift)[:2].astype(np.float32)


def warp_2d(image: np.ndarray, zoom: float, angle: float, translation_x: float, translation_y: float,
            border: str = "replicate") -> np.ndarray:
    """One 2D step of an HxWx3 uint8 frame; zoom above 1 moves in, a positive angle turns anticlockwise."""
    if zoom <= 0:
        raise ValueError(f"Zoom must be above 0 (1 keeps the size); got {zoom}.")
    height, width = image.shape[:2]
    matrix = affine_matrix(width, height, zoom, angle, translation_x, translation_y)
    return cv2.warpAffine(image, matrix, (width, height), borderMode=_CV2_BORDER[check_border(border)])


def rotation_matrix(rx: float, ry: float, rz: float) -> np.ndarray:
    """Euler angles in degrees to a 3x3 matrix, composed X then Y then Z (pytorch3d's "XYZ", as Deforum uses)."""
    def axis(angle: float, which: str) -> np.ndarray:
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        if which == "X":
            return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
        if which == "Y":
            return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return axis(rx, "X") @ axis(ry, "Y") @ axis(rz, "Z")


def depth_grid(depth: np.ndarray, translation: tuple[float, float, float], rotation: tuple[float, float, float],
               fov: float) -> np.ndarray:
    """Where each output pixel samples the old frame, as grid_sample's (1, H, W, 2) grid in -1..1."""
    if not 0 < fov < 180:
        raise ValueError(f"Field of view must be between 0 and 180 degrees; got {fov}.")
    height, width = depth.shape
    aspect = width / height
    y, x = np.meshgrid(np.linspace(-1.0, 1.0, height), np.linspace(-1.0, 1.0, width), indexing="ij")
    points = np.stack([x.ravel(), y.ravel(), depth.astype(np.float64).ravel()], axis=1)
    tx, ty, tz = translation
    shift = np.array([-tx * TRANSLATION_SCALE, ty * TRANSLATION_SCALE, -tz * TRANSLATION_SCALE])
    moved = points @ rotation_matrix(*rotation) + shift
    scale = 1.0 / math.tan(math.radians(fov) / 2)

    def project(p: np.ndarray) -> np.ndarray:
        z = np.where(np.abs(p[:, 2:3]) < 1e-6, 1e-6, p[:, 2:3])
        return np.concatenate([p[:, 0:1] * scale / aspect, p[:, 1:2] * scale], axis=1) / z

    offset = (project(moved) - project(points)).reshape(height, width, 2)
    identity = torch.nn.functional.affine_grid(torch.eye(2, 3)[None], [1, 1, height, width], align_corners=False)
    return identity.numpy()[0] - offset.astype(np.float32)


def warp_3d(image: np.ndarray, depth: np.ndarray, translation: tuple[float, float, float],
            rotation: tuple[float, float, float], fov: float, border: str = "replicate"
            ) -> tuple[np.ndarray, np.ndarray]:
    """One 3D step of an HxWx3 uint8 frame and its depth map (HxW floats); both come back warped."""
    border = check_border(border)
    grid = depth_grid(depth, translation, rotation, fov)
    if border == "wrap":
        grid = np.mod(grid + 1.0, 2.0) - 1.0
    padding = {"replicate": "border", "wrap": "border", "reflect": "reflection"}[border]
    stacked = np.concatenate([image.astype(np.float32), depth[..., None].astype(np.float32)], axis=2)
    tensor = torch.from_numpy(stacked).permute(2, 0, 1)[None]
    out = torch.nn.functional.grid_sample(tensor, torch.from_numpy(grid)[None], mode="bilinear",
                                          padding_mode=padding, align_corners=False)[0].permute(1, 2, 0).numpy()
    return np.clip(np.rint(out[..., :3]), 0, 255).astype(np.uint8), out[..., 3].copy()


def blend(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) * a + weight * b for uint8 frames, rounded."""
    if weight >= 1:
        return b.copy()
    if weight <= 0:
        return a.copy()
    mixed = a.astype(np.float32) * (1 - weight) + b.astype(np.float32) * weight
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
