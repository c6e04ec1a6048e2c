"""Square training crops: around a face for people, centred otherwise, and the face box carried into the crop."""
from __future__ import annotations

Box = tuple[int, int, int, int]  # left, top, right, bottom; right and bottom exclusive


def centre_square(width: int, height: int) -> Box:
    """The largest centred square of a photo."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def face_square(face: Box, width: int, height: int, padding: float = 1.0) -> Box:
    """A square around the face with `padding` face sizes each side (head and shoulders), kept in the photo.

    padding (`float`, *optional*, defaults to 1.0): the face then fills about a third of the crop, as
    kohya's face_crop_aug_range and OneTrainer's people presets frame it. A square too big for the photo
    shrinks to its shorter side.
    """
    left, top, right, bottom = face
    size = max(right - left, bottom - top)
    side = min(round(size * (1 + 2 * padding)), width, height)
    x = round((left + right) / 2 - side / 2)
    y = round((top + bottom) / 2 - side / 2)
    x = min(max(x, 0), width - side)
    y = min(max(y, 0), height - side)
    return x, y, x + side, y + side


def box_in_crop(box: Box, crop: Box, size: int) -> Box:
    """`box` (photo pixels) in the pixels of `crop` resized to `size`, clipped to the crop."""
    left, top, right, bottom = crop
    scale = size / (right - left)

    def place(value: float, low: int) -> int:
        return min(size, max(0, round((value - low) * scale)))

    return place(box[0], left), place(box[1], top), place(box[2], left), place(box[3], top)


def mirror_box(box: Box, size: int) -> Box:
    """The box in the horizontally flipped crop."""
    left, top, right, bottom = box
    return size - right, top, size - left, bottom
