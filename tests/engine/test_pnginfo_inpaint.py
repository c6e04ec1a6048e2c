"""A1111's inpaint fields read back into a request, so an inpaint PNG's recipe can be loaded again."""
from engine.image.generate import request_from_parameters

SETTINGS = "a door\nSteps: 2, Sampler: Euler, Seed: 1, Size: 64x64, Denoising strength: 0.4, Mask blur: 9"


def test_only_masked_and_its_padding_are_read_back():
    req, skipped = request_from_parameters(SETTINGS + ", Inpaint area: Only masked, Masked area padding: 40")
    assert (req.only_masked, req.only_masked_padding, req.mask_blur, req.strength) == (True, 40, 9, 0.4)
    assert skipped == []


def test_without_the_area_field_an_inpaint_png_is_whole_picture_and_bad_padding_is_named():
    req, skipped = request_from_parameters(SETTINGS + ", Masked area padding: wide")
    assert req.only_masked is False and req.only_masked_padding == 32
    assert skipped == ["Masked area padding"]
