"""engine.image.preview: the A1111 "Approx cheap" latent preview, at the output's size."""

import numpy as np
import pytest
from PIL import Image

from engine.image.preview import LATENT_RGB_FACTORS, latents_to_preview


def latent_of(vector, height=4, width=6) -> np.ndarray:
    return np.broadcast_to(np.asarray(vector, np.float32)[:, None, None], (4, height, width)).copy()


def test_size_is_eight_times_the_latent():
    preview = latents_to_preview(np.zeros((4, 64, 96), np.float32))
    assert isinstance(preview, Image.Image) and preview.mode == "RGB"
    assert preview.size == (768, 512)


def test_zero_latent_is_mid_grey():
    assert np.all(np.asarray(latents_to_preview(np.zeros((4, 2, 2), np.float32))) == 128)


@pytest.mark.parametrize(
    ("vector", "colour"),
    [
        # 255 * (0.5 + 0.5 * factors[channel]), worked out by hand
        ((1, 0, 0, 0), (165, 154, 154)),
        ((0, 0, 0, -1), (151, 162, 188)),
        ((0, 0, 1, 0), (107, 152, 161)),
    ],
)
def test_known_channels_give_the_a1111_colours(vector, colour):
    preview = np.asarray(latents_to_preview(latent_of(vector)))
    assert np.all(preview == np.array(colour, np.uint8))


def test_factors_are_the_sd15_approx_cheap_table():
    assert LATENT_RGB_FACTORS.shape == (4, 3)
    np.testing.assert_allclose(LATENT_RGB_FACTORS[3], [-0.184, -0.271, -0.473])
    np.testing.assert_allclose(LATENT_RGB_FACTORS[:, 0], [0.298, 0.187, -0.158, -0.184])


def test_batch_of_one_matches_single_latent():
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((4, 5, 7)).astype(np.float32)
    single = np.asarray(latents_to_preview(latent))
    batched = np.asarray(latents_to_preview(latent[None]))
    np.testing.assert_array_equal(single, batched)


def test_layout_is_kept_when_upscaled():
    latent = np.zeros((4, 4, 8), np.float32)
    latent[3, :, :4] = -3.0  # strongly blue on the left half only
    preview = np.asarray(latents_to_preview(latent)).astype(int)
    assert preview.shape == (32, 64, 3)
    left, right = preview[16, 4], preview[16, 60]
    assert left[2] > 240 and left[2] > left[0] + 50, "left is bright and blue"
    assert tuple(right) == (128, 128, 128)


def test_out_of_range_values_are_clipped_and_nan_is_grey():
    latent = latent_of((100, 100, 100, -100), 2, 2)
    assert np.all(np.asarray(latents_to_preview(latent)) == 255)
    assert np.all(np.asarray(latents_to_preview(-latent)) == 0)
    nans = np.full((4, 2, 2), np.nan, np.float32)
    assert np.all(np.asarray(latents_to_preview(nans)) == 128)


def test_torch_like_objects_are_read_through_array_protocol():
    class TensorLike:
        def __array__(self, dtype=None, copy=None):
            return np.zeros((1, 4, 2, 3), dtype or np.float32)

    assert latents_to_preview(TensorLike()).size == (24, 16)


@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 4, 8, 8), (4, 8), (4, 0, 8), (1, 1, 4, 8, 8)])
def test_wrong_shapes_are_refused(shape):
    with pytest.raises(ValueError, match=r"\(4, h, w\) or \(1, 4, h, w\)"):
        latents_to_preview(np.zeros(shape, np.float32))
