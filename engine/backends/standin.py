"""The base of the per-request UNet stand-ins (feature reuse, OpenVINO): they borrow the shared UNet, never copy it."""
from __future__ import annotations

import torch


class BorrowedUNet(torch.nn.Module):
    """Looks like the shared UNet to a pipeline (its config, dtype, device and other attributes) while owning no
    weights, so a request can change how the UNet runs without touching what other requests share."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    @property
    def config(self):
        return self.unet.config

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def device(self) -> torch.device:
        return self.unet.device

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self.__dict__.get("_modules", {}).get("unet")
            if inner is None:
                raise
            return getattr(inner, name)
