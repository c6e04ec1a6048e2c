"""An image input the engine reads before Gradio does, so every client hears the app's sentence for a bad file."""
from __future__ import annotations

import base64
import binascii
import logging
from pathlib import Path

import gradio as gr
from gradio.processing_utils import extract_base64_data

from engine.files import images

log = logging.getLogger("diffusion_studio")


def upload_path(value) -> tuple[str | None, str | None]:
    """(path, original file name) of an image box's raw value, as a preprocess=False listener receives it."""
    if isinstance(value, dict):
        return value.get("path"), value.get("orig_name")
    return (str(value), None) if value else (None, None)


def readable(path, name: str | None = None) -> tuple[str | None, str | None]:
    """(path, None) when the engine can read the image at `path`, else (None, a sentence naming only the file)."""
    if not path:
        return None, None
    try:
        images.load_image(path)
    except ValueError as exc:
        message = str(exc)
        if name and str(path) in message:
            message = message.replace(str(path), Path(name).name)
        return None, message.replace(str(Path(path).parent) + "/", "")
    return str(path), None


def inline_problem(url: str) -> str | None:
    """The engine's sentence for an image sent inline as a data: URL, or None when it can read it."""
    try:
        data = base64.b64decode(extract_base64_data(url), validate=False)
    except (binascii.Error, ValueError):
        return "The uploaded file is not an image Diffusion Studio can read (PNG, JPEG or WebP)."
    try:
        images.load_image(data)
    except ValueError as exc:
        return str(exc)
    return None


class ImageUpload(gr.Image):
    """gr.Image whose uploads the engine's loader checks first: a file that isn't an image, or one too large to
    open (a decompression bomb), gets the same sentence through gradio_client and the raw API as in the browser
    and over REST, instead of Gradio's developer message with the server's temp path."""

    is_template = True  # drawn by the browser as a plain gr.Image

    def preprocess(self, payload):
        if payload is not None:
            if payload.url and payload.url.startswith("data:"):
                problem = inline_problem(payload.url)
            else:
                _, problem = readable(payload.path, payload.orig_name)
            if problem:
                log.info("user error: %s", problem)
                raise gr.Error(problem, print_exception=False)
        return super().preprocess(payload)
