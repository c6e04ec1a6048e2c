"""--precision int8: NNCF's hybrid quantisation of OpenVINO's UNet on the tiny model: it runs, it is cached on
disk beside the float model, it is reused from that cache, and its output stays close to PyTorch fp32."""
from __future__ import annotations

import pytest

from engine.backends import int8
from engine.image.generate import text_to_image
from engine.image.request import ImageRequest
from tests.engine.test_backends import one_call_against_torch

INT8_TOLERANCE = 0.08  # relative error of one int8 UNet call against PyTorch fp32 on the tiny model (measured
# 0.029 with the float-kept convolutions, 0.11-0.16 without them; weights-only int8 alone measured 0.0015)


def test_precision_names_and_what_auto_means():
    assert int8.resolve(None) == "bf16" and int8.resolve("auto") == "bf16"  # int8 is opt-in for now
    assert int8.resolve(" INT8 ") == "int8" and int8.resolve("bf16") == "bf16"
    with pytest.raises(ValueError, match="use auto, bf16 or int8"):
        int8.check_precision("fp8")


def test_flags_and_environment_carry_the_precision(monkeypatch):
    import app
    from engine.cli import build_parser
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    monkeypatch.delenv("STUDIO_PRECISION", raising=False)
    assert app.parse_args([]).precision == "auto" and RuntimeOptions().precision == "auto"
    monkeypatch.setenv("STUDIO_PRECISION", "int8")
    assert app.parse_args([]).precision == "int8"
    assert build_parser().parse_args(["txt2img", "--out", "x.png"]).precision == "int8"
    assert app.manager_from(app.parse_args(["--precision", "bf16"])).options.precision == "bf16"
    with pytest.raises(ValueError, match="Unknown precision"):
        PipelineManager("tiny", RuntimeOptions(precision="int4"))
    with pytest.raises(ValueError, match="OpenVINO back end"):
        PipelineManager("tiny", RuntimeOptions(backend="torch", precision="int8"))


@pytest.fixture(scope="module")
def int8_manager(tmp_path_factory):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from engine.pipeline.manager import PipelineManager, RuntimeOptions
    from tests.engine import lora_files

    cache = tmp_path_factory.mktemp("openvino-int8")
    mp = pytest.MonkeyPatch()
    mp.setenv("STUDIO_OPENVINO_CACHE", str(cache))
    loras = tmp_path_factory.mktemp("Lora")
    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32", backend="openvino",
                                                     openvino_background=False, precision="int8"), lora_dir=loras)
    lora_files.write_lora(loras, "lcm-lora-sdv1-5", lora_files.kohya_lora(manager.base(), text=False, scale=0.3))
    yield manager, cache
    mp.undo()


def test_int8_runs_close_to_fp32_and_says_so_in_png_info(int8_manager, tiny_manager):
    from engine.backends.openvino import weights_key

    manager, cache = int8_manager
    runner = manager.openvino()
    assert runner.int8 and runner.folder == cache / weights_key(manager.base().unet, int8.RECIPE)
    view, error = one_call_against_torch(manager, runner)
    assert view.ov_calls == 1 and view.torch_calls == 0
    assert 0 < error < INT8_TOLERANCE  # not bit-identical (it is quantised), yet close
    assert runner.conversions == 1 and "quantize_s" in runner.timings
    assert "OpenVINO int8 ready" in runner.status()
    # the saved model carries int8 weights
    xml = (runner.folder / "unet.xml").read_text()
    assert 'element_type="u8"' in xml or 'element_type="i8"' in xml
    request = ImageRequest(prompt="a lighthouse", num_inference_steps=4, width=64, height=64, seed=3)
    image = text_to_image(manager, request).images[0]
    assert "Precision: int8" in image.parameters and "Backend: OpenVINO" in image.parameters
    plain = text_to_image(tiny_manager, request).images[0]
    assert "Precision" not in plain.parameters  # the default is not written


def test_int8_model_is_reused_from_the_disk_cache(int8_manager):
    from engine.backends.openvino import OpenVINOUNetRunner, Shape

    manager, cache = int8_manager
    recorded = []
    second = OpenVINOUNetRunner(manager.base().unet, precision="f32", cache_dir=cache, background=False, int8=True,
                                calibration=lambda: recorded.append(1) or [])
    assert second.folder == manager.openvino().folder
    assert second.ensure(Shape(2, 8, 8, 77, 4)) is not None
    assert second.conversions == 0 and second.compiles == 1 and recorded == []  # no calibration, no conversion


def test_int8_keeps_the_sensitive_convolutions_in_float(int8_manager):
    import re

    import openvino as ov

    manager, _ = int8_manager
    model = ov.Core().read_model(manager.openvino().folder / "unet.xml")
    quantized, kept = set(), set()
    for op in model.get_ops():
        if op.get_type_name() != "Convolution":
            continue
        name = op.get_friendly_name()
        fed = op.input_value(0).get_node().get_type_name() == "FakeQuantize"
        if any(re.fullmatch(pattern, name) for pattern in int8.KEEP_FLOAT):
            kept.add(name) if not fed else quantized.add(name)
        elif fed:
            quantized.add(name)
    assert any("conv_in" in name for name in kept) and any("conv_out" in name for name in kept)
    assert any("proj_in" in name for name in kept) and any("samplers" in name for name in kept)
    assert quantized and all(re.search(r"resnets\.\d+\.conv[12]", name) for name in quantized)


def test_calibration_records_the_model_s_own_unet_inputs(tiny_manager):
    inputs = int8.record_unet_inputs(tiny_manager.base().components, prompts=("a cat", "a dog"), steps=2, side=8)
    assert len(inputs) == 4  # 2 prompts x 2 steps
    sample, t, context = inputs[0]
    assert sample.shape == (2, 4, 8, 8) and t.shape == () and context.shape[:2] == (2, 77)
    assert float(inputs[0][1]) > float(inputs[1][1])  # steps count down


def test_a_fewstep_request_with_int8_runs_its_fused_float_model_on_openvino(int8_manager):
    from tests.engine.lora_files import image_and_parameters

    manager, _ = int8_manager
    runner = manager.openvino()
    plain, text = image_and_parameters(manager, "a tower")
    assert "Precision: int8" in text and "Backend: OpenVINO" in text
    conversions = runner.conversions
    fast, text = image_and_parameters(manager, "a tower <lora:lcm-lora-sdv1-5:1>")
    assert "Backend: OpenVINO" in text and "Precision" not in text  # the fused model is not quantised
    assert runner.conversions == conversions + 1 and abs(fast - plain).mean() > 5
    xml = (runner.folder_for(runner._last_variant) / "unet.xml").read_text()
    assert 'element_type="u8"' not in xml and 'element_type="i8"' not in xml
    again, text = image_and_parameters(manager, "a tower")
    assert "Precision: int8" in text and (again == plain).all()
