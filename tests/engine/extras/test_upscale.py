import numpy as np
import pytest
from PIL import Image

from engine.extras import tiles, upscalers
from engine.extras.request import ExtrasRequest
from engine.extras.run import run_extras
from engine.extras.upscale import target_size, upscale
from engine.files import pnginfo


def gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    rgb = np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2)
    return Image.fromarray((rgb * 255).astype(np.uint8))


def test_models_are_listed_by_a1111_name_or_stem_after_lanczos(weights):
    assert upscalers.upscaler_names(weights) == ["Lanczos", "tiny_esrgan", "R-ESRGAN 2x+"]
    assert upscalers.resolve("RealESRGAN_x2plus", weights).name == "RealESRGAN_x2plus.pth"
    assert upscalers.resolve("lanczos", weights) is None


def test_spandrel_reads_both_tiny_files_as_upscalers(weights):
    assert upscalers.load_upscaler(upscalers.resolve("R-ESRGAN 2x+", weights)).scale == 2
    assert upscalers.load_upscaler(upscalers.resolve("tiny_esrgan", weights)).scale == 4


@pytest.mark.parametrize("upscaler, by, to, size", [
    ("Lanczos", 2.5, None, (100, 75)), ("R-ESRGAN 2x+", 2, None, (80, 60)), ("R-ESRGAN 2x+", 3, None, (120, 90)),
    ("tiny_esrgan", 1.5, None, (60, 45)), ("tiny_esrgan", None, (97, 33), (97, 33)),
])
def test_result_has_the_size_asked_for(weights, upscaler, by, to, size):
    result = run_extras(ExtrasRequest(gradient(40, 30), upscale_by=by, upscale_to=to, upscaler=upscaler), weights)
    assert result.image.size == size


def test_a_2x_model_makes_6x_in_more_passes_than_one(weights, monkeypatch):
    from engine.extras import upscale as module
    calls = []
    real = module.run_model
    monkeypatch.setattr(module, "run_model", lambda model, image, on_tile=None: calls.append(image.size) or real(model, image))
    assert upscale(gradient(16, 16), (96, 96), "R-ESRGAN 2x+", weights).size == (96, 96)
    assert calls == [(16, 16), (32, 32), (64, 64)]


def test_tiles_equal_a_whole_image_run_and_show_no_seams(weights):
    model = upscalers.load_upscaler(upscalers.resolve("R-ESRGAN 2x+", weights))
    image = np.asarray(gradient(96, 80), dtype=np.float32) / 255

    def run(piece):
        import torch
        with torch.inference_mode():
            return model(torch.from_numpy(np.ascontiguousarray(piece.transpose(2, 0, 1)))[None])[0].numpy().transpose(1, 2, 0)

    whole = run(image)
    tiled = tiles.upscale_tiled(run, image, 2, tile=40, overlap=8)
    assert tiled.shape == whole.shape
    assert np.abs(tiled - whole).max() < 0.05
    # across each tile border the step between neighbouring columns is no larger than inside tiles
    steps = np.abs(np.diff(tiled, axis=1)).max(axis=(0, 2))
    borders = [2 * s for s in tiles.tile_starts(96, 40, 8)[1:]] + [2 * (s + 40) for s in tiles.tile_starts(96, 40, 8)[:-1]]
    inside = np.delete(steps, [b - 1 for b in borders if 0 < b < len(steps) + 1])
    assert max(steps[b - 1] for b in borders if 0 < b <= len(steps)) <= inside.max() + 1e-6


def test_feather_weights_sum_to_one_in_an_overlap():
    left, right = tiles.feather(40, 8, False, True), tiles.feather(40, 8, True, False)
    np.testing.assert_allclose(left[-8:] + right[:8], 1.0, atol=1e-6)


def test_the_pixel_cap_is_a_sentence(monkeypatch):
    monkeypatch.setenv("STUDIO_MAX_UPSCALE_MEGAPIXELS", "1")
    with pytest.raises(ValueError, match="over the 1-megapixel cap"):
        target_size(800, 600, 2)
    assert target_size(400, 300, 2) == (800, 600)


@pytest.mark.parametrize("by", [0.5, 9, float("nan")])
def test_a_factor_outside_1_to_8_is_refused(by):
    with pytest.raises(ValueError, match="from 1 to 8"):
        target_size(64, 64, by)


def test_a_lora_a_damaged_file_and_an_unknown_name_are_refused(weights, tmp_path):
    import torch
    lora = weights / "ESRGAN" / "detail_lora.pth"
    torch.save({"lora_unet_down_blocks_0.lora_down.weight": torch.zeros(4, 4)}, lora)
    damaged = weights / "ESRGAN" / "cut.pth"
    damaged.write_bytes(b"\x80\x02 not a whole file")
    with pytest.raises(ValueError, match="not an upscaler model"):
        upscale(gradient(8, 8), (16, 16), "detail_lora", weights)
    with pytest.raises(ValueError, match="damaged"):
        upscale(gradient(8, 8), (16, 16), "cut", weights)
    with pytest.raises(ValueError, match="Unknown upscaler"):
        upscale(gradient(8, 8), (16, 16), "R-ESRGAN 8x", weights)


def test_postprocess_fields_join_the_inputs_recipe_and_read_back(weights):
    image = gradient(32, 32)
    image.info["parameters"] = pnginfo.format_parameters("a cat", "blurry", {"Steps": 20, "Seed": 7, "Size": "32x32"})
    result = run_extras(ExtrasRequest(image, upscale_by=2, upscaler="R-ESRGAN 2x+"), weights)
    fields = pnginfo.parse_parameters(pnginfo.read_parameters(pnginfo.png_bytes(result.image, result.parameters)))
    assert fields["prompt"] == "a cat" and fields["Seed"] == "7"
    assert fields["Postprocess upscale by"] == "2" and fields["Postprocess upscaler"] == "R-ESRGAN 2x+"


def test_a_photo_without_a_recipe_gets_fields_that_read_back(weights):
    result = run_extras(ExtrasRequest(gradient(20, 20), upscale_to=(50, 40)), weights)
    fields = pnginfo.parse_parameters(result.parameters)
    assert fields["Postprocess upscale to"] == "50x40" and fields["Postprocess upscaler"] == "Lanczos"
