"""Running an Extras job: upscale, then write A1111's postprocess fields beside the picture's own recipe."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from engine.extras import restore
from engine.extras import upscale as upscaling
from engine.extras.request import ExtrasRequest
from engine.extras.upscalers import LANCZOS
from engine.files import pnginfo
from engine.files.images import ImageSource, load_image
from engine.image.parameters import restoration_fields


@dataclass
class ExtrasResult:
    image: Image.Image
    parameters: str


def open_image(source: ImageSource) -> Image.Image:
    """The upload as RGB with its PNG info kept, so the result's recipe starts from the input's."""
    image = load_image(source)
    if isinstance(source, (str, Path, bytes, bytearray)):
        text = pnginfo.read_parameters(bytes(source) if isinstance(source, bytearray) else source)
        if text:
            image.info[pnginfo.PARAMETERS_KEY] = text
    return image


def run_extras(req: ExtrasRequest, weights_dir: Path,
               on_tile: Callable[[int, int], None] | None = None, allow_path: bool = False) -> ExtrasResult:
    """Finish one picture; the input's PNG info is kept and the postprocess fields are added to it."""
    size = req.size()
    existing = pnginfo.read_parameters(req.image) or ""
    image = req.image
    if req.restore_faces:  # on the picture as given: faces are found at their own size, then upscaled with the rest
        image = restore.restore_faces(image, req.restore_faces, req.visibility, weights_dir=weights_dir)
    image = upscaling.upscale(image, size, req.upscaler or LANCZOS, weights_dir, on_tile, allow_path)
    return ExtrasResult(image, postprocess_parameters(existing, req, image.size))


def postprocess_fields(req: ExtrasRequest) -> dict[str, str]:
    """A1111's names: `Postprocess upscale by` (or `... upscale to`), `Postprocess upscaler`, `Face restoration`."""
    fields: dict[str, str] = {}
    if req.upscale_to:
        fields["Postprocess upscale to"] = f"{int(req.upscale_to[0])}x{int(req.upscale_to[1])}"
    else:
        fields["Postprocess upscale by"] = f"{float(req.upscale_by):g}"
    name = req.upscaler or LANCZOS
    fields["Postprocess upscaler"] = Path(name).stem if Path(name).suffix else name
    fields.update({key: value for key, value in restoration_fields(req).items() if value is not None})
    return fields


def postprocess_parameters(existing: str, req: ExtrasRequest, size: tuple[int, int]) -> str:
    """The input's recipe with the postprocess fields appended to its settings line (A1111 reads them there)."""
    fields = postprocess_fields(req)
    if existing.strip():
        parsed = pnginfo.parse_parameters(existing)
        prompt, negative = parsed.pop("prompt"), parsed.pop("negative_prompt")
        if parsed:
            return pnginfo.format_parameters(prompt, negative, {**parsed, **fields})
    return pnginfo.format_parameters("", "", {**fields, "Size": f"{size[0]}x{size[1]}"})
