"""One Extras job: which picture, how large, and with what; checked once at the engine's edge."""
from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from engine.extras import upscale as upscaling


@dataclass
class ExtrasRequest:
    """Restore faces, then upscale by a factor or to a size; the steps of `run.run_extras` read these in order."""

    image: Image.Image
    upscale_by: float = 2.0
    upscale_to: tuple[int, int] | None = None  # width, height; wins over upscale_by when given
    upscaler: str = "Lanczos"
    restore_faces: str | None = None  # a restorer's name (engine.extras.restore); None leaves faces as they are
    visibility: float = 1.0  # how much of the restored face shows, 0 to 1

    def size(self) -> tuple[int, int]:
        """The result's size, or a sentence when the factor or size is out of range or over the cap."""
        if not isinstance(self.image, Image.Image):
            raise ValueError("Upload an image to upscale.")
        return upscaling.target_size(self.image.width, self.image.height, self.upscale_by, self.upscale_to)
