"""Reading a PNG's parameters into Text to image sets its ControlNet units, as A1111's "send to" does."""
from gradio_client import handle_file
from PIL import Image

from engine.files import pnginfo

A1111 = ('a cottage\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 4, Size: 64x64, ControlNet 0: "Module: canny, '
         'Model: control_v11p_sd15_canny [d14c016b], Weight: 1.3, Resize Mode: Just Resize, Low Vram: False, '
         'Processor Res: 512, Threshold A: 80, Threshold B: 180, Guidance Start: 0.1, Guidance End: 0.8, '
         'Pixel Perfect: False, Control Mode: ControlNet is more important"')
FIRST_UNIT = 19  # png_info's outputs: text, note, 17 fields, then each unit's LOADED_FIELDS


def test_the_units_settings_are_filled_and_a_missing_model_is_named(client, tmp_path):
    path = pnginfo.save_png(Image.new("RGB", (64, 64)), tmp_path / "made.png", A1111)
    out = client.predict(handle_file(str(path)), api_name="/png_info")
    unit0 = out[FIRST_UNIT:FIRST_UNIT + 10]
    assert unit0 == (True, "canny", "control_v11p_sd15_canny", 1.3, 0.1, 0.8, "ControlNet is more important",
                     "Just Resize", 80, 180)
    assert out[FIRST_UNIT + 10] is False and out[FIRST_UNIT + 20] is False  # units 1 and 2 switched off
    assert "control_v11p_sd15_canny is not in weights/ControlNet" in out[1]


def test_a_png_without_units_switches_them_off(client, tmp_path):
    path = pnginfo.save_png(Image.new("RGB", (64, 64)), tmp_path / "plain.png",
                            "a cottage\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 4, Size: 64x64")
    out = client.predict(handle_file(str(path)), api_name="/png_info")
    assert [out[FIRST_UNIT + 10 * i] for i in range(3)] == [False, False, False]
    assert "ControlNet" not in out[1]
