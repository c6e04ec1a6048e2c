"""Faces: detection, the repaint region and mask, likeness, and the face tabs' portrait repaint, aging, gender swap
and identity adapter.

The package's own names are those of `detect`, `region` and `likeness`, so `from engine import faces` reads as
`faces.detect_faces(...)`, `faces.face_region(...)`, `faces.identity_distance(...)`."""
from engine.faces.detect import DETECT_SIDE, MIN_FACE, NO_FACE, Face, detect_faces, draw_faces, pick_face, usable  # noqa: F401
from engine.faces.likeness import (  # noqa: F401
    SAME_PERSON,
    face_identity_distance,
    identity_available,
    identity_distance,
)
from engine.faces.region import face_mask, face_region  # noqa: F401
