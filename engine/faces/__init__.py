"""Faces: detection, and the face tabs' portrait repaint, aging, gender swap and identity adapter.

The package's own names are those of `detect`, so `from engine import faces` reads as before."""
from engine.faces.detect import (  # noqa: F401
    DETECT_SIDE,
    MIN_FACE,
    NO_FACE,
    SAME_PERSON,
    Face,
    detect_faces,
    draw_faces,
    face_identity_distance,
    face_mask,
    face_region,
    identity_available,
    identity_distance,
    pick_face,
    usable,
)
