"""Var. seed and Var. strength on the X/Y/Z plot, and a Var. strength sweep video: the walk around one image."""
import numpy as np
import pytest

from engine.image.generate import text_to_image
from engine.image.request import ImageRequest
from engine.xyz import PlotRequest, parse_axis, parse_axis_spec, plan_plot, run_plot

BASE = dict(prompt="a red apple", num_inference_steps=2, width=64, height=64, seed=3, sampler="Euler")


def test_the_axes_read_a1111s_names_and_ranges():
    assert parse_axis("var. strength", "0-0.3 [4]").values == (0.0, 0.1, 0.2, 0.3)
    assert parse_axis_spec("Var. seed: 5-7").values == (5, 6, 7)
    assert parse_axis("Var. strength", "0, 1").labels == ["Var. strength: 0", "Var. strength: 1"]


@pytest.mark.parametrize("spec, words", [("Var. strength: 0.5, 1.2", "must be from 0 (off) to 1"),
                                         ("Var. seed: -2", "must be -1 (random)"),
                                         ("Var. seed: 1.5", "not a whole number")])
def test_bad_values_get_a_sentence(spec, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_axis_spec(spec)


def test_a_var_seed_axis_needs_a_strength():
    with pytest.raises(ValueError, match="Var. seed axis changes nothing"):
        plan_plot(PlotRequest(ImageRequest(**BASE), x="Var. seed: 1, 2"))
    plan = plan_plot(PlotRequest(ImageRequest(**BASE, variation_strength=0.2), x="Var. seed: 1, -1"))
    assert plan.cells[0].request.variation_seed == 1 and plan.cells[1].request.variation_seed >= 0


def test_a_var_strength_sweep_walks_from_the_image_toward_one_variation_seed(tiny_manager):
    result = run_plot(tiny_manager, PlotRequest(ImageRequest(**BASE), x="Var. strength: 0, 0.5, 1", video="X"))
    seeds = {cell.request.variation_seed for cell in result.plan.cells}
    assert len(seeds) == 1  # a random variation seed, picked once for the whole walk
    walk_seed = seeds.pop()
    assert len(result.frames) == 3
    plain = text_to_image(tiny_manager, ImageRequest(**BASE)).images[0]
    end = text_to_image(tiny_manager, ImageRequest(**{**BASE, "seed": walk_seed})).images[0]
    assert np.array_equal(np.asarray(result.cells[0].image), np.asarray(plain.image))
    assert np.array_equal(np.asarray(result.cells[2].image), np.asarray(end.image))
    assert f"Variation seed: {walk_seed}, Variation seed strength: 0.5" in result.cells[1].parameters
