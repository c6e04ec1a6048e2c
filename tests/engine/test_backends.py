"""Back ends: how auto chooses, OpenVINO's output against PyTorch fp32 on the tiny model, fallbacks to PyTorch
(no OpenVINO, Fast, LoRA, uncompiled sizes) and the disk cache, asserted on counts of conversions."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from engine import backends
from engine.backends import choose_backend
from engine.image.generate import text_to_image
from engine.image.request import ImageRequest
from engine.pipeline.schedulers import DEFAULT_SAMPLER

SD15_PARAMETERS = 859_520_964
TINY_PARAMETERS = 500_000
OV_TOLERANCE = 1e-4  # relative error of OpenVINO in fp32 against PyTorch fp32 for one UNet call (measured 1.3e-6)
PIXEL_TOLERANCE = 2  # largest difference of any pixel (0-255) between the two back ends' images, fp32


# 1. the choice
@pytest.mark.parametrize("requested, device, parameters, installed, machine, expected", [
    ("auto", "cpu", SD15_PARAMETERS, True, "x86_64", "openvino"),
    ("auto", "cpu", SD15_PARAMETERS, True, "AMD64", "openvino"),
    (None, "cpu", SD15_PARAMETERS, True, "x86_64", "openvino"),
    ("auto", "cpu", TINY_PARAMETERS, True, "x86_64", "torch"),  # converting would cost more than it saves
    ("auto", "cpu", SD15_PARAMETERS, False, "x86_64", "torch"),  # not installed
    ("auto", "cpu", SD15_PARAMETERS, True, "aarch64", "torch"),  # ARM
    ("auto", "cuda", SD15_PARAMETERS, True, "x86_64", "torch"),
    ("auto", "mps", SD15_PARAMETERS, True, "arm64", "torch"),
    ("torch", "cpu", SD15_PARAMETERS, True, "x86_64", "torch"),
    ("openvino", "cpu", TINY_PARAMETERS, True, "x86_64", "openvino"),  # asked for: even the tiny model
    ("OpenVINO", "cpu", SD15_PARAMETERS, True, "aarch64", "openvino"),
    ("openvino", "cpu", SD15_PARAMETERS, False, "x86_64", "torch"),  # asked for but missing: falls back, says why
])
def test_auto_picks_openvino_on_x86_cpus_with_it_installed(requested, device, parameters, installed, machine,
                                                           expected):
    choice = choose_backend(requested, device, parameters, installed=installed, machine=machine)
    assert choice.name == expected
    assert choice.reason.endswith(".")


def test_missing_openvino_reason_says_how_to_install():
    choice = choose_backend("auto", "cpu", SD15_PARAMETERS, installed=False, machine="x86_64")
    assert "pip install 'openvino==2026.4.*'" in choice.reason


def test_unknown_backend_and_openvino_on_a_gpu_are_refused_in_one_sentence():
    with pytest.raises(ValueError, match="use auto, torch or openvino"):
        choose_backend("tensorrt", "cpu", SD15_PARAMETERS)
    with pytest.raises(ValueError, match="CPU only"):
        choose_backend("openvino", "cuda", SD15_PARAMETERS, installed=True)
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    with pytest.raises(ValueError, match="Unknown back end"):
        PipelineManager("tiny", RuntimeOptions(backend="onnx"))


def test_flags_and_environment_carry_the_backend(monkeypatch):
    import app
    from engine.cli import build_parser

    monkeypatch.setenv("STUDIO_BACKEND", "torch")
    assert app.parse_args([]).backend == "torch"
    assert app.manager_from(app.parse_args(["--backend", "openvino"])).options.backend == "openvino"
    assert build_parser().parse_args(["txt2img", "--out", "x.png", "--backend", "openvino"]).backend == "openvino"


# 2. without OpenVINO
def test_without_openvino_everything_runs_on_torch(monkeypatch, tmp_path):
    from engine.backends.openvino import OpenVINOUNetRunner
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` now raises ImportError
    assert not backends.openvino_installed()
    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32", backend="openvino"))
    manager.base()
    assert manager.backend == "torch" and manager.openvino() is None
    assert "not installed" in manager.backend_choice.reason
    assert type(manager.pipeline("txt2img", DEFAULT_SAMPLER).unet).__name__ == "UNet2DConditionModel"
    with pytest.raises(ValueError, match=r"pip install 'openvino==2026\.4\.\*'"):
        OpenVINOUNetRunner(manager.base().unet, cache_dir=tmp_path)


# 3. OpenVINO on the tiny model (one conversion for the module, in a temporary disk cache)
@pytest.fixture(scope="module")
def ov_cache(tmp_path_factory):
    pytest.importorskip("openvino")
    return tmp_path_factory.mktemp("openvino-cache")


@pytest.fixture(scope="module")
def ov_manager(ov_cache):
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    mp = pytest.MonkeyPatch()
    mp.setenv("STUDIO_OPENVINO_CACHE", str(ov_cache))
    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32", backend="openvino",
                                                     openvino_background=False))
    manager.base()
    yield manager
    mp.undo()


def _request(**changes) -> ImageRequest:
    return ImageRequest(**{"prompt": "a lighthouse", "num_inference_steps": 4, "width": 64, "height": 64,
                           "seed": 3, **changes})


def one_call_against_torch(manager, runner):
    """One guided UNet call through the OpenVINO view and through PyTorch: (the view, relative error)."""
    unet = manager.base().unet
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 4, 16, 16, generator=generator)
    context = torch.randn(2, 77, unet.config.cross_attention_dim, generator=generator)
    view = runner.view()
    with torch.no_grad():
        ours = view(sample, torch.tensor(500), context).sample
        reference = unet(sample, torch.tensor(500), encoder_hidden_states=context).sample
    return view, float((ours - reference).norm() / reference.norm())


def test_openvino_matches_torch_fp32_on_the_tiny_model(ov_manager, tiny_manager):
    runner = ov_manager.openvino()
    assert ov_manager.backend == "openvino" and runner is not None and runner.precision == "f32"
    # one UNet call
    view, error = one_call_against_torch(ov_manager, runner)
    assert view.ov_calls == 1 and view.torch_calls == 0
    assert error < OV_TOLERANCE
    # a whole image against the torch manager's, same seed
    on_ov = text_to_image(ov_manager, _request()).images[0]
    on_torch = text_to_image(tiny_manager, _request()).images[0]
    diff = np.abs(np.asarray(on_ov.image, dtype=int) - np.asarray(on_torch.image, dtype=int))
    assert diff.max() <= PIXEL_TOLERANCE
    assert "Backend: OpenVINO" in on_ov.parameters and "Backend: PyTorch" in on_torch.parameters
    assert runner.conversions == 1  # one model, several shapes: converted once


def test_fast_and_lora_requests_take_the_torch_path(ov_manager, monkeypatch):
    from engine.backends import fastpath

    runner = ov_manager.openvino()
    # feature reuse is slower than OpenVINO's plain run, so Fast there is Few-step mode or refused in a sentence
    with pytest.raises(ValueError, match="Few-step mode"):
        ov_manager.pipeline("txt2img", DEFAULT_SAMPLER, fast=True)
    with pytest.raises(ValueError, match="few-step LoRA|Few-step mode"):
        text_to_image(ov_manager, _request(fast=True))
    assert not isinstance(ov_manager.pipeline("txt2img", DEFAULT_SAMPLER).unet, fastpath.FeatureCacheUNet)
    # a LoRA loaded into the shared UNet (diffusers' PEFT flag), or a LoRA scale, sends calls to PyTorch
    unet = ov_manager.base().unet
    sample, context = torch.randn(2, 4, 8, 8), torch.randn(2, 77, unet.config.cross_attention_dim)
    view = runner.view()
    with torch.no_grad():
        view(sample, 500, context, cross_attention_kwargs={"scale": 0.5})
        monkeypatch.setattr(unet, "_hf_peft_config_loaded", True, raising=False)
        view(sample, 500, context)
    assert view.ov_calls == 0 and view.torch_calls == 2


def test_sizes_openvino_was_not_traced_for_run_on_torch(ov_manager):
    view = ov_manager.openvino().view()
    unet = ov_manager.base().unet
    factor = ov_manager.openvino().upsample_factor
    sample = torch.randn(2, 4, factor * 2 + 1, factor * 2)  # not a multiple of the UNet's down-sampling
    with torch.no_grad():
        view(sample, 500, torch.randn(2, 77, unet.config.cross_attention_dim))
    assert view.ov_calls == 0 and view.torch_calls == 1


def test_the_disk_cache_is_reused_by_a_second_build(ov_manager, ov_cache):
    from engine.backends.openvino import OpenVINOUNetRunner, Shape

    first = ov_manager.openvino()
    shape = Shape(2, 8, 8, 77, 4)
    first.ensure(shape)
    assert first.conversions == 1
    second = OpenVINOUNetRunner(ov_manager.base().unet, precision="f32", cache_dir=ov_cache, background=False)
    assert second.folder == first.folder
    assert second.ensure(shape) is not None
    assert second.conversions == 0 and second.compiles == 1 and second.cache_loads == 1


def test_a_new_model_is_prepared_in_the_background_while_torch_serves(ov_manager, tmp_path):
    from engine.backends.openvino import OpenVINOUNetRunner, Shape

    runner = OpenVINOUNetRunner(ov_manager.base().unet, precision="f32", cache_dir=tmp_path, background=True)
    shape = Shape(2, 8, 8, 77, 4)
    assert runner.ensure(shape) is None  # this request: PyTorch
    assert "preparing" in runner.status()
    runner.wait()
    assert runner.ready(shape) and runner.conversions == 1
    assert runner.ensure(shape) is not None and "ready" in runner.status()


def test_the_default_back_end_is_auto(monkeypatch):
    import app
    from engine.cli import build_parser
    from engine.pipeline.manager import RuntimeOptions

    monkeypatch.delenv("STUDIO_BACKEND", raising=False)
    assert app.parse_args([]).backend == "auto"
    assert build_parser().parse_args(["txt2img", "--out", "x.png"]).backend == "auto"
    assert RuntimeOptions().backend == "auto"
