"""Hires. fix with an upscaler model from weights/ESRGAN, on the tiny pipeline."""
import pytest
from PIL import Image

from engine.extras.upscale import upscale
from engine.image.generate import request_from_parameters, text_to_image
from engine.image.hires import upscaler_choices
from engine.image.request import ImageRequest

BASE = dict(prompt="a lighthouse at dusk", num_inference_steps=2, width=64, height=64, seed=11, hires_scale=2)


@pytest.fixture
def manager_with_models(tiny_manager, weights, monkeypatch):
    monkeypatch.setattr(tiny_manager, "weights_dir", weights)
    return tiny_manager


def test_the_models_join_the_hires_list_after_a1111s_own(weights):
    choices = upscaler_choices(weights)
    assert choices[:2] == ["Latent", "Latent (antialiased)"] and choices[-2:] == ["tiny_esrgan", "R-ESRGAN 2x+"]


def test_a_model_upscales_the_first_pass_and_the_name_reaches_png_info(manager_with_models, weights):
    plain = text_to_image(manager_with_models, ImageRequest(**{**BASE, "hires_scale": None})).images[0].image
    done = text_to_image(manager_with_models, ImageRequest(**BASE, hires_upscaler="R-ESRGAN 2x+", hires_strength=0))
    image = done.images[0].image
    assert image.size == (128, 128)
    assert image.tobytes() == upscale(plain, (128, 128), "R-ESRGAN 2x+", weights).tobytes()
    assert image.tobytes() != plain.resize((128, 128), Image.LANCZOS).tobytes()
    assert "Hires upscaler: R-ESRGAN 2x+" in done.images[0].parameters


def test_an_unknown_model_name_is_refused_with_the_list(manager_with_models):
    with pytest.raises(ValueError, match="Unknown Hires upscaler .*R-ESRGAN 2x\\+"):
        text_to_image(manager_with_models, ImageRequest(**BASE, hires_upscaler="4x-UltraSharp"))


def test_png_info_naming_a_missing_model_falls_back_to_lanczos():
    req, skipped = request_from_parameters("a cat\nSteps: 20, Size: 64x64, Seed: 1, Hires upscale: 2, "
                                           "Hires upscaler: 4x-UltraSharp")
    assert req.hires_upscaler == "Lanczos" and any("4x-UltraSharp" in s for s in skipped)
