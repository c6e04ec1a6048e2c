import numpy as np
import pytest

from engine.faces.gender import GenderRequest, check_gender, gender_swap
from engine.faces.portrait import find_face_area
from engine.files import pnginfo

FAST = dict(num_inference_steps=3, size=64, sampler="Euler", seed=4)


def arr(image):
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_swap_changes_only_the_face_region_and_keeps_the_size(tiny_manager, astronaut):
    result = gender_swap(tiny_manager, GenderRequest(direction="man", variants=2, **FAST), astronaut)
    outside = np.asarray(find_face_area(astronaut).mask) == 0
    assert [v.seed for v in result.variants] == [4, 5]
    for variant in result.variants:
        assert variant.image.size == astronaut.size
        assert np.array_equal(arr(variant.image)[outside], arr(astronaut)[outside])
        fields = pnginfo.parse_parameters(variant.parameters)
        assert fields["Gender swap"] == "to man" and "man" in fields["prompt"]
    assert not np.array_equal(arr(result.variants[0].image), arr(result.variants[1].image))


def test_same_settings_give_the_same_variant(tiny_manager, astronaut):
    a = gender_swap(tiny_manager, GenderRequest(direction="woman", variants=1, **FAST), astronaut).variants[0]
    b = gender_swap(tiny_manager, GenderRequest(direction="to woman", variants=1, **FAST), astronaut).variants[0]
    assert np.array_equal(arr(a.image), arr(b.image))


def test_unknown_direction_and_bad_variants_are_refused():
    with pytest.raises(ValueError, match="Unknown direction"):
        check_gender(GenderRequest(direction="cat"))
    with pytest.raises(ValueError, match="Variants must be"):
        check_gender(GenderRequest(direction="woman", variants=0))


def test_several_faces_say_which_was_used(tiny_manager, astronaut):
    from PIL import Image

    pair = Image.new("RGB", (1024, 512))
    pair.paste(astronaut, (0, 0))
    pair.paste(astronaut.resize((400, 400)), (560, 56))
    result = gender_swap(tiny_manager, GenderRequest(direction="man", variants=1, **FAST), pair)
    assert any("faces were found" in note for note in result.notes)
