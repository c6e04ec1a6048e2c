"""A1111's `parameters` PNG text chunk, so our images open in PNG-info readers and other tools.

Every PNG written here also carries provenance (see `engine.provenance`): an invisible watermark in
its pixels and an "AI-generated" note in its text chunks, because the face tabs edit real people.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from engine import provenance

PARAMETERS_KEY = "parameters"
SOFTWARE_KEY = "Software"  # PNG's registered keyword for the program that made the image
NOTE_KEY = "Comment"  # PNG's registered keyword for free text: holds `provenance.AI_NOTE`
# No XMP packet: Pillow hands it to readers as bytes, and sd-parsers' `to_json` then fails.
NEGATIVE_PREFIX = "Negative prompt:"

_KEY = re.compile(r"\w[\w \-/]*")
# One "Key: value" pair of the settings line: a JSON-quoted value or anything up to the next comma.
_PAIR = re.compile(r'\s*(\w[\w \-/]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_MIN_SETTINGS = 3  # A1111 treats the last line as settings only when it holds at least three pairs
_RESERVED = {"prompt", "negative_prompt"}


def format_parameters(prompt: str, negative_prompt: str, settings: Mapping[str, Any]) -> str:
    """Write settings the way A1111 does, so users can paste them into any SD tool and get the image back."""
    for name, text in (("prompt", prompt), ("negative prompt", negative_prompt)):
        if not isinstance(text, str):
            raise ValueError(f"Pass the {name} as text, not {type(text).__name__}.")
    if not isinstance(settings, Mapping):
        raise ValueError(f"Pass the settings as a dict such as {{'Steps': 20}}, not {type(settings).__name__}.")
    prompt, negative_prompt = _clean(prompt), _clean(negative_prompt)
    pairs = [f"{_check_key(key)}: {_quote(value)}" for key, value in settings.items() if value is not None]
    lines = [prompt] if prompt else []
    if negative_prompt:
        lines.append(f"{NEGATIVE_PREFIX} {negative_prompt}")
    if pairs:
        lines.append(", ".join(pairs))
    return "\n".join(lines)


def parse_parameters(text: str) -> dict[str, str]:
    """Read A1111 infotext back into prompt, negative prompt and string settings, to reuse an image's recipe."""
    if not isinstance(text, str):
        raise ValueError(f"Pass the parameters as text, not {type(text).__name__}.")
    lines = text.replace("\r\n", "\n").strip().split("\n")
    settings = _parse_settings(lines[-1])
    if settings is None:
        settings = {}
    else:
        lines = lines[:-1]

    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    for line in lines:
        if not negative_lines and line.startswith(NEGATIVE_PREFIX):
            negative_lines.append(line[len(NEGATIVE_PREFIX):].lstrip())
        elif negative_lines:
            negative_lines.append(line)
        else:
            prompt_lines.append(line)
    result = {"prompt": "\n".join(prompt_lines).strip(), "negative_prompt": "\n".join(negative_lines).strip()}
    result.update(settings)
    return result


def png_bytes(image: Image.Image | np.ndarray, parameters: str) -> bytes:
    """Encode a PNG with its recipe in memory, for downloads and the API.

    The pixels get the invisible watermark (images of at least 256x256 pixels; alpha is kept) and the
    text chunks get `Software` and an AI-generated `Comment` beside `parameters`. An edit already marked
    by `provenance.watermark_inside` keeps its pixels as they are, and its marked boxes go into the
    `Watermark regions` text.
    """
    image = _as_image(image)
    info = _png_info(parameters)
    regions = image.info.get(provenance.REGIONS_KEY)
    if regions:  # an edit marked only where it was regenerated: say where, so readers look there
        info.add_text(provenance.REGIONS_KEY, regions)
    buffer = io.BytesIO()
    (image if regions is not None else _watermarked(image)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def save_png(image: Image.Image | np.ndarray, path: str | Path, parameters: str) -> Path:
    """Save a watermarked PNG with its recipe, so the file alone is enough to make the image again."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"Save to a file ending in .png, not {path.name}.")
    if not path.parent.is_dir():
        raise ValueError(f"The folder {path.parent} does not exist; create it or choose another.")
    path.write_bytes(png_bytes(image, parameters))
    return path


def read_parameters(source: str | Path | bytes | Image.Image) -> str | None:
    """Fetch an image's A1111 `parameters` text (None when it has none), for PNG-info and "send to" buttons."""
    if isinstance(source, Image.Image):
        return _text_of(source)
    if isinstance(source, (bytes, bytearray)):
        fp, name = io.BytesIO(bytes(source)), "The uploaded file"
    elif isinstance(source, (str, Path)):
        fp, name = Path(source), str(source)
        if not fp.is_file():
            raise ValueError(f"{fp} was not found; check the path and try again.")
    else:
        raise ValueError(f"Pass a file path, bytes or a PIL image, not {type(source).__name__}.")
    try:
        with Image.open(fp) as image:
            return _text_of(image)
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise ValueError(f"{name} is not an image Diffusion Studio can read (PNG, JPEG or WebP).") from None


def _text_of(image: Image.Image) -> str | None:
    # PngImageFile.text also reads chunks stored after the pixel data.
    chunks = image.text if isinstance(image, PngImagePlugin.PngImageFile) else image.info
    value = chunks.get(PARAMETERS_KEY)
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else None


def _png_info(parameters: str) -> PngImagePlugin.PngInfo:
    if not isinstance(parameters, str):
        raise ValueError(f"Pass the parameters as text (see format_parameters), not {type(parameters).__name__}.")
    info = PngImagePlugin.PngInfo()
    info.add_text(PARAMETERS_KEY, parameters)  # tEXt when Latin-1 fits, otherwise UTF-8 iTXt
    info.add_text(SOFTWARE_KEY, provenance.SOFTWARE)
    info.add_text(NOTE_KEY, provenance.AI_NOTE)
    return info


def _watermarked(image: Image.Image) -> Image.Image:
    """Watermark the colour planes and put any alpha channel back, so transparent PNGs stay transparent."""
    if not provenance.can_watermark(image.size):
        return image  # too small to carry the mark; the text chunks still say AI-generated
    marked = provenance.watermark(image)
    if "A" in image.getbands():
        marked.putalpha(image.getchannel("A"))
    return marked


def _as_image(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim in (2, 3):
        return Image.fromarray(image)
    raise ValueError("Pass the image as a PIL image or a uint8 numpy array.")


def _clean(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key) or key.strip() != key or key in _RESERVED:
        raise ValueError(
            f"Setting name {key!r} cannot be written; use letters, digits, spaces, '-' or '/', like 'CFG scale'."
        )
    return key


def _quote(value: Any) -> str:
    text = str(value)
    needs_quotes = (
        any(ch in text for ch in ",:\n\r")
        or text != text.strip()
        or (len(text) >= 2 and text.startswith('"') and text.endswith('"'))
    )
    return json.dumps(text, ensure_ascii=False) if needs_quotes else text


def _parse_settings(line: str) -> dict[str, str] | None:
    """Return the line's `Key: value` pairs when it is a settings line, else None (A1111's rule)."""
    pairs = _PAIR.findall(line)
    if len(pairs) < _MIN_SETTINGS:
        return None
    return {key.strip(): _unquote(value.strip()) for key, value in pairs}


def _unquote(value: str) -> str:
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        try:
            decoded = json.loads(value)
        except json.JSONDecodeError:
            return value
        return decoded if isinstance(decoded, str) else value
    return value
