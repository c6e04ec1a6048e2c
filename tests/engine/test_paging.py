"""Weights in mapped files: the swap keeps every value and layout, in-place changes stay private, and paging out
changes nothing but residency; then PyTorch's UNet reads from the disk cache once OpenVINO holds the weights."""
from __future__ import annotations

import sys

import pytest
import torch

from engine.backends import paging

MAPS = """\
7f0000000000-7f0000400000 r--p 00000000 00:2a 123   /cache/abc/unet-torch.pt
7f0000400000-7f0000800000 rw-p 00400000 00:2a 123   /cache/abc/unet-torch.pt
7f1000000000-7f1000001000 r--p 00000000 00:2a 124   /cache-other/x.blob
7f2000000000-7f2000001000 rw-p 00000000 00:00 0
7f3000000000-7f3000002000 r--p 00000000 00:2a 125   /cache/abc/compiled/1.blob
"""
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mapped-file checks read /proc")


def _conv() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3), torch.nn.GroupNorm(2, 8)).to(
        memory_format=torch.channels_last).eval()


def test_mapped_ranges_keeps_only_files_under_the_folder():
    from pathlib import Path

    ranges = paging.mapped_ranges(Path("/cache"), MAPS)
    assert ranges == [(0x7f0000000000, 0x7f0000400000), (0x7f0000400000, 0x7f0000800000),
                      (0x7f3000000000, 0x7f3000002000)]  # not /cache-other, not anonymous memory
    assert paging.mapped_ranges(Path("/nowhere"), MAPS) == []


@linux_only
def test_file_back_keeps_values_and_layout_and_private_changes_stay_private(tmp_path):
    module = _conv()
    before = {key: value.clone() for key, value in module.state_dict().items()}
    sample = torch.randn(1, 4, 9, 9)
    with torch.no_grad():
        expected = module(sample)
    path = tmp_path / "weights.pt"
    assert paging.file_back(module, path) and path.exists()
    weight = module[0].weight
    assert paging.is_file_backed(weight, tmp_path)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.equal(before[key], value) for key, value in module.state_dict().items())
    with torch.no_grad():
        assert torch.equal(module(sample), expected)
        weight.add_(1.0)  # a fused LoRA, say: copy-on-write, the file keeps the original
    assert torch.equal(torch.load(path, weights_only=True)["0.weight"], before["0.weight"])


@linux_only
def test_file_back_writes_a_stale_file_again(tmp_path):
    path = tmp_path / "weights.pt"
    paging.save_state(torch.nn.Linear(3, 2), path)  # another module's tensors under the same name
    module = _conv()
    expected = module[0].weight.clone()
    assert paging.file_back(module, path)
    assert paging.is_file_backed(module[0].weight, tmp_path) and torch.equal(module[0].weight, expected)


@linux_only
def test_page_out_changes_nothing_but_residency(tmp_path):
    module = _conv()
    sample = torch.randn(1, 4, 9, 9)
    with torch.no_grad():
        expected = module(sample)
    assert paging.file_back(module, tmp_path / "weights.pt")
    assert paging.page_out(tmp_path) >= 1
    with torch.no_grad():
        assert torch.equal(module(sample), expected)
    assert paging.page_out(tmp_path / "empty") == 0


@linux_only
def test_torch_unet_reads_its_weights_from_the_cache_once_openvino_is_ready(tmp_path):
    pytest.importorskip("openvino")
    from engine.backends.openvino import OpenVINOUNetRunner, Shape
    from engine.faces.identity import share_unet
    from engine.pipeline.components import build_tiny_pipeline

    unet = build_tiny_pipeline().unet
    twin = share_unet(unet)  # the identity adapter's UNet, made before OpenVINO was ready
    generator = torch.Generator().manual_seed(1)
    sample = torch.randn(2, 4, 8, 8, generator=generator)
    context = torch.randn(2, 77, unet.config.cross_attention_dim, generator=generator)
    with torch.no_grad():
        expected = unet(sample, 500, context).sample
    runner = OpenVINOUNetRunner(unet, precision="f32", cache_dir=tmp_path, background=False,
                                sharers=lambda: [twin])
    assert not paging.is_file_backed(unet.conv_in.weight, runner.folder)
    assert runner.ensure(Shape(2, 8, 8, 77, 4)) is not None
    assert runner.torch_file_backed and paging.is_file_backed(unet.conv_in.weight, runner.folder)
    assert twin.conv_in.weight.data_ptr() == unet.conv_in.weight.data_ptr()  # followed: no copy left behind
    with torch.no_grad():
        assert torch.equal(unet(sample, 500, context).sample, expected)  # a fallback: same pixels as before
        view = runner.view(unet)
        view(sample, 500, context)
    assert view.ov_calls == 1
