"""Tiny upscaler files with random weights in the original key layouts, made in the test for spandrel to read."""
from pathlib import Path

import pytest
import torch


def compact_file(path: Path, scale: int = 4) -> Path:
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    torch.save(Compact(num_feat=8, num_conv=2, upscale=scale).state_dict(), path)
    return path


def esrgan_file(path: Path) -> Path:
    from safetensors.torch import save_file
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in ESRGAN(num_filters=8, num_blocks=1, scale=4).state_dict().items()}, path)
    return path


@pytest.fixture
def weights(tmp_path) -> Path:
    """A weights folder with a Real-ESRGAN-Compact 2x (named as A1111 knows it) and an ESRGAN 4x."""
    (tmp_path / "RealESRGAN").mkdir()
    (tmp_path / "ESRGAN").mkdir()
    compact_file(tmp_path / "RealESRGAN" / "RealESRGAN_x2plus.pth", scale=2)
    esrgan_file(tmp_path / "ESRGAN" / "tiny_esrgan.safetensors")
    return tmp_path
