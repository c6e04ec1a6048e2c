"""Library notices the app has already answered, kept off the console; every other warning still shows."""
from __future__ import annotations

import logging

TORCHVISION_FALLBACK = "requires torchvision (not installed); falling back to"
"""transformers' notice, at diffusers' import, that `CLIPImageProcessor` and `SiglipImageProcessor` use their PIL
versions. Those are the image processors transformers had before torchvision ones, and torchvision needs another
torch build, so the app runs without it on purpose."""

_SOURCE = "transformers.utils.import_utils"  # the one logger that sends it


def _keep(record: logging.LogRecord) -> bool:
    return TORCHVISION_FALLBACK not in record.getMessage()


def quiet_torchvision_fallback() -> None:
    """Drop that one notice at its source logger, before diffusers is imported; idempotent."""
    logger = logging.getLogger(_SOURCE)
    if _keep not in logger.filters:
        logger.addFilter(_keep)
