"""Variation seed and strength: A1111's slerp, then on the tiny model the promises (0 = plain, 1 = the variation
seed's image, same inputs same pixels, batches counting up), the checks, and the PNG-info fields."""
import numpy as np
import pytest

from engine.files import pnginfo
from engine.image.generate import image_to_image, inpaint, request_from_parameters, text_to_image
from engine.image.request import MAX_SEED, ImageRequest
from engine.image.variations import check_variation, slerp, variation_fields

BASE = dict(prompt="a lighthouse at dusk", num_inference_steps=3, width=64, height=64, seed=11)


def noise(seed, shape=(1, 4, 16, 16)):
    return np.random.default_rng(seed).standard_normal(shape)


# 1. the maths
def test_slerp_ends_are_the_two_noises_exactly():
    a, b = noise(1), noise(2)
    assert np.array_equal(slerp(0.0, a, b), a)
    assert np.array_equal(slerp(1.0, a, b), b)


def test_slerp_keeps_unit_variance_where_a_straight_blend_shrinks_it():
    a, b = noise(1, (1, 4, 64, 64)), noise(2, (1, 4, 64, 64))
    for t in (0.1, 0.25, 0.5, 0.75, 0.9):
        assert abs(slerp(t, a, b).std() - 1.0) < 0.02
    assert ((a + b) / 2).std() < 0.75  # what renormalising is there to avoid


def test_slerp_turns_each_column_by_its_share_of_the_angle():
    a, b = noise(3), noise(4)
    a, b = a / np.linalg.norm(a, axis=-2, keepdims=True), b / np.linalg.norm(b, axis=-2, keepdims=True)
    t = 0.3
    mixed = slerp(t, a, b)

    def angle(x, y):  # per column: vectors along axis -2, as A1111's slerp takes them
        cos = (x * y).sum(-2) / np.linalg.norm(x, axis=-2) / np.linalg.norm(y, axis=-2)
        return np.arccos(np.clip(cos, -1, 1))

    np.testing.assert_allclose(angle(a, mixed), t * angle(a, b), atol=1e-9)
    np.testing.assert_allclose(angle(mixed, b), (1 - t) * angle(a, b), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(mixed, axis=-2), 1.0, atol=1e-12)  # unit columns stay unit


def test_slerp_of_the_same_noise_is_that_noise():
    a = noise(5)
    np.testing.assert_allclose(slerp(0.4, a, a), a, atol=1e-12)


# 2. checks and PNG info
@pytest.mark.parametrize("strength", [-0.1, 1.5, "lots", float("nan")])
def test_a_strength_outside_0_to_1_is_one_sentence(strength):
    with pytest.raises(ValueError, match="Variation strength must"):
        check_variation(ImageRequest(variation_strength=strength))


def test_a_bad_variation_seed_is_one_sentence():
    with pytest.raises(ValueError, match="Variation seed must be -1"):
        check_variation(ImageRequest(variation_seed=MAX_SEED + 1, variation_strength=0.2))


def test_fields_only_when_a_variation_was_made_and_they_read_back():
    assert variation_fields(None, 0.3) == {} and variation_fields(5, 0.0) == {}
    text = pnginfo.format_parameters("a cat", "", {"Steps": 20, "Seed": 1, **variation_fields(77, 0.25)})
    assert "Variation seed: 77, Variation seed strength: 0.25" in text
    req, skipped = request_from_parameters(text)
    assert (req.variation_seed, req.variation_strength, skipped) == (77, 0.25, [])
    req, skipped = request_from_parameters("a cat\nSteps: 20, Variation seed: x, Variation seed strength: 0.5")
    assert skipped == ["Variation seed"] and req.variation_strength == 0.5


# 3. on the tiny model
def pixels(result):
    return [np.asarray(item.image) for item in result.images]


def test_strength_0_is_the_plain_image_pixel_for_pixel(tiny_manager):
    plain = text_to_image(tiny_manager, ImageRequest(**BASE))
    off = text_to_image(tiny_manager, ImageRequest(**BASE, variation_seed=5, variation_strength=0.0))
    assert np.array_equal(pixels(plain)[0], pixels(off)[0])
    assert "Variation" not in off.images[0].parameters and off.images[0].variation_seed is None


def test_same_seeds_and_strength_same_pixels_and_the_fields_are_saved(tiny_manager):
    req = ImageRequest(**BASE, variation_seed=5, variation_strength=0.3)
    first, again = text_to_image(tiny_manager, req), text_to_image(tiny_manager, req)
    plain = text_to_image(tiny_manager, ImageRequest(**BASE))
    assert np.array_equal(pixels(first)[0], pixels(again)[0])
    assert not np.array_equal(pixels(first)[0], pixels(plain)[0])
    assert "Seed: 11" in first.images[0].parameters
    assert "Variation seed: 5, Variation seed strength: 0.3" in first.images[0].parameters
    read, skipped = request_from_parameters(first.images[0].parameters)
    assert (read.variation_seed, read.variation_strength) == (5, 0.3) and not skipped


def test_strength_1_is_the_plain_image_of_the_variation_seed(tiny_manager):
    full = text_to_image(tiny_manager, ImageRequest(**BASE, variation_seed=5, variation_strength=1.0))
    other = text_to_image(tiny_manager, ImageRequest(**{**BASE, "seed": 5}))
    assert np.array_equal(pixels(full)[0], pixels(other)[0])


def test_a_small_strength_stays_closer_to_the_image_than_a_large_one(tiny_manager):
    plain = pixels(text_to_image(tiny_manager, ImageRequest(**BASE)))[0].astype(float)
    near = pixels(text_to_image(tiny_manager, ImageRequest(**BASE, variation_seed=5, variation_strength=0.1)))[0]
    far = pixels(text_to_image(tiny_manager, ImageRequest(**BASE, variation_seed=5, variation_strength=0.9)))[0]
    assert np.abs(near - plain).mean() < np.abs(far - plain).mean()


def test_a_batch_keeps_its_seed_and_counts_a_random_variation_seed_up(tiny_manager):
    batch = text_to_image(tiny_manager, ImageRequest(**BASE, batch_count=2, variation_seed=-1,
                                                     variation_strength=0.2))
    first = batch.images[0].variation_seed
    following = (first + 1) % (MAX_SEED + 1)
    assert 0 <= first <= MAX_SEED
    assert [i.seed for i in batch.images] == [11, 11]  # A1111: variations of one image
    assert [i.variation_seed for i in batch.images] == [first, following]
    second = text_to_image(tiny_manager, ImageRequest(**BASE, variation_seed=following, variation_strength=0.2))
    assert np.array_equal(pixels(batch)[1], pixels(second)[0])
    assert not np.array_equal(pixels(batch)[0], pixels(batch)[1])
    assert "Seed: 11," in batch.images[1].parameters
    assert f"Variation seed: {following}," in batch.images[1].parameters
    plain = text_to_image(tiny_manager, ImageRequest(**BASE, batch_count=2, variation_seed=3))
    assert [i.seed for i in plain.images] == [11, 12]  # strength 0: the plain batch


def test_img2img_variations_repeat_differ_and_strength_0_is_plain(tiny_manager, photo_64):
    def run(**variation):
        return pixels(image_to_image(tiny_manager, ImageRequest(**BASE, strength=0.8, **variation), photo_64))[0]

    plain, off = run(), run(variation_seed=5, variation_strength=0.0)
    varied, again = run(variation_seed=5, variation_strength=0.5), run(variation_seed=5, variation_strength=0.5)
    assert np.array_equal(plain, off)
    assert np.array_equal(varied, again) and not np.array_equal(varied, plain)


def test_hires_fix_varies_both_passes_and_repeats(tiny_manager):
    req = ImageRequest(**BASE, hires_scale=1.5, variation_seed=5, variation_strength=0.4)
    first, again = text_to_image(tiny_manager, req), text_to_image(tiny_manager, req)
    plain = text_to_image(tiny_manager, ImageRequest(**BASE, hires_scale=1.5))
    assert np.array_equal(pixels(first)[0], pixels(again)[0]) and not np.array_equal(pixels(first)[0], pixels(plain)[0])
    assert "Variation seed: 5" in first.images[0].parameters


def test_inpaint_refuses_a_variation_with_a_sentence(tiny_manager, photo_64):
    from PIL import Image

    with pytest.raises(ValueError, match="Text to image and Image to image only"):
        inpaint(tiny_manager, ImageRequest(**BASE, variation_strength=0.2), photo_64, Image.new("L", (64, 64), 255))
