"""Deforum schedules, keyframed prompts, warps and colour matching: pure functions, no model."""
import cv2
import numpy as np
import pytest

from engine.video.animate import color, schedules, warp
from engine.video.animate.deforum_settings import parse_settings, to_settings, unused_note
from engine.video.animate.request import AnimateRequest, check_animation, frame_seed


def test_keyframes_are_interpolated_linearly_and_held_at_the_ends():
    series = schedules.schedule_series("10:(2.0), 0:(1.0), 20:(1.0)", "zoom", 25)
    assert series[0] == 1.0 and series[5] == pytest.approx(1.5) and series[10] == 2.0
    assert series[15] == pytest.approx(1.5) and series[24] == 1.0
    assert schedules.schedule_series("5:(3)", "angle", 8).tolist() == [3.0] * 8  # before the first key: held


def test_expressions_of_t_are_evaluated_per_frame():
    series = schedules.schedule_series("0: (1.0025+0.002*sin(1.25*3.14*t/30))", "zoom", 31)
    t = np.arange(31)
    assert np.allclose(series, 1.0025 + 0.002 * np.sin(1.25 * 3.14 * t / 30))
    both = schedules.schedule_series("0:(t), 10:(20-t)", "angle", 11)
    assert both[0] == 0 and both[10] == 10 and both[5] == pytest.approx(0.5 * 5 + 0.5 * 15)
    assert schedules.schedule_series("0:(-2*pi + abs(-1) + max(1, 2) ** 2)", "x", 1)[0] == pytest.approx(
        -2 * np.pi + 5)


@pytest.mark.parametrize("text, says", [
    ("0:(__import__('os'))", "calls '__import__'"),
    ("0:(__import__('os').system('true'))", "attribute access"),
    ("0:(t.__class__)", "attribute access"),
    ("0:(os)", "the name 'os'"),
    ("0:((lambda: 1)())", "a lambda"),
    ("0:([1][0])", "indexing"),
    ("0:('a')", "only numbers"),
    ("0:(1 if t else 2)", "if/else"),
    ("0:(sin(x=1))", "keyword"),
])
def test_anything_but_numbers_t_and_maths_is_refused_with_a_sentence(text, says):
    with pytest.raises(ValueError, match="The zoom schedule") as error:
        schedules.parse_schedule(text, "zoom")
    assert says in str(error.value)


@pytest.mark.parametrize("text, says", [
    ("0:(1.0), 30:(1.02", "unclosed '(' at position 13"),
    ("0:(1.0) 30:(1.02)", "position 9"),
    ("zoom", "position 1"),
    ("0:(1+)", "not valid maths"),
    ("", "empty"),
    ("0:(1), 0:(2)", "frame 0 twice"),
    ("0:(1/(t-2))", "at frame 2"),
])
def test_schedules_that_dont_parse_name_the_schedule_and_the_position(text, says):
    with pytest.raises(ValueError, match="translation x schedule") as error:
        schedules.schedule_series(text, "translation x", 5)
    assert says in str(error.value)


def test_keyframed_prompts_and_their_blend():
    prompts = schedules.parse_prompts("0: a forest at dawn\n\n48: a desert at night")
    assert prompts == {0: "a forest at dawn", 48: "a desert at night"}
    assert schedules.parse_prompts("just a cat") == {0: "just a cat"}
    assert schedules.prompt_weights(prompts, 47, 0) == [("a forest at dawn", 1.0)]
    assert schedules.prompt_weights(prompts, 48, 4) == [("a desert at night", 1.0)]
    (_, w_old), (_, w_new) = schedules.prompt_weights(prompts, 46, 4)
    assert w_new == pytest.approx(3 / 5) and w_old + w_new == pytest.approx(1)
    with pytest.raises(ValueError, match="line 2 has no frame number"):
        schedules.parse_prompts("0: a\nb")


def test_check_notes_a_keyframe_past_the_end_and_refuses_zoom_at_zero_and_too_many_frames():
    req, notes = check_animation(AnimateRequest(prompts={0: "a", 50: "b"}, zoom="0:(1), 40:(1.1)", num_frames=10))
    assert any("frame 40" in n and "zoom" in n for n in notes)
    assert any("prompt at frame 50" in n for n in notes)
    with pytest.raises(ValueError, match="Zoom must stay above 0.*frame 5"):
        check_animation(AnimateRequest(zoom="0:(1), 10:(-1)", num_frames=10))
    with pytest.raises(ValueError, match="from 1 to 1000"):
        check_animation(AnimateRequest(num_frames=5000))
    with pytest.raises(ValueError, match="strength schedule gives 1.5"):
        check_animation(AnimateRequest(strength="0:(1.5)"))
    assert req.seed >= 0 and req.mode == "2d"


def test_seed_behaviours():
    req, _ = check_animation(AnimateRequest(seed=10))
    assert [frame_seed(req, f) for f in range(3)] == [10, 11, 12]
    fixed, _ = check_animation(AnimateRequest(seed=10, seed_behavior="FIXED"))
    assert {frame_seed(fixed, f) for f in range(5)} == {10}
    rand, _ = check_animation(AnimateRequest(seed=10, seed_behavior="random"))
    assert len({frame_seed(rand, f) for f in range(5)}) == 5 and frame_seed(rand, 3) == frame_seed(rand, 3)


def test_2d_warp_is_deforums_matrix_through_cv2():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    ours = warp.warp_2d(image, 1.1, 5.0, 3.0, -2.0, "wrap")
    rot = np.vstack([cv2.getRotationMatrix2D((32, 24), 5.0, 1.1), [0, 0, 1]])
    matrix = (rot @ np.array([[1, 0, 3.0], [0, 1, -2.0], [0, 0, 1]]))[:2].astype(np.float32)
    assert np.array_equal(ours, cv2.warpAffine(image, matrix, (64, 48), borderMode=cv2.BORDER_WRAP))
    assert np.array_equal(warp.warp_2d(image, 1.0, 0.0, 0.0, 0.0), image)
    with pytest.raises(ValueError, match="Border must be"):
        warp.warp_2d(image, 1, 0, 0, 0, "mirror")


def test_3d_warp_without_motion_keeps_the_frame_and_moving_forward_enlarges_it():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    flat = np.full((32, 48), 2.0, dtype=np.float32)
    same, depth = warp.warp_3d(image, flat, (0, 0, 0), (0, 0, 0), 70)
    assert np.array_equal(same, image) and np.allclose(depth, flat)
    dot = np.zeros((32, 48, 3), dtype=np.uint8)
    dot[12:20, 20:28] = 255
    forward, _ = warp.warp_3d(dot, flat, (0, 0, 100), (0, 0, 0), 70)
    assert (forward > 127).sum() > (dot > 127).sum()  # closer: the square looks bigger
    turned, _ = warp.warp_3d(dot, flat, (0, 0, 0), (0, 5, 0), 70)
    assert not np.array_equal(turned, dot)


def test_colour_matching_pulls_the_mean_lab_to_the_reference():
    rng = np.random.default_rng(2)
    reference = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    tinted = np.clip(reference.astype(int) + [60, 0, -60], 0, 255).astype(np.uint8)
    before = np.linalg.norm(color.mean_lab(tinted) - color.mean_lab(reference))
    for mode in ("RGB", "lab", "Match Frame 0 HSV"):
        after = np.linalg.norm(color.mean_lab(color.match_colors(tinted, reference, mode)) - color.mean_lab(reference))
        assert after < before / 4, mode
    assert color.match_colors(tinted, reference, "None") is tinted


def test_deforum_settings_round_trip_and_list_the_keys_not_used():
    req, _ = check_animation(AnimateRequest(prompts={0: "a forest", 12: "a desert"}, mode="3d", num_frames=30,
                                            zoom="0:(1.04)", translation_z="0:(2)", strength="0:(0.6)", cadence=3,
                                            color_coherence="hsv", border="wrap", seed=7, fps=10))
    again, unused = parse_settings(to_settings(req))
    assert unused == [] and again == req
    deforum = {"animation_mode": "2D", "max_frames": "40", "zoom": "0:(1.02)", "angle": "0:(1)",
               "translation_x": "0:(2)", "strength_schedule": "0: (0.65)", "diffusion_cadence": "2",
               "color_coherence": "Match Frame 0 LAB", "border": "Replicate",
               "animation_prompts": {"0": "a forest", "20": "a city"}, "fps": 15, "seed": 3,
               "perlin_octaves": 4, "hybrid_motion": "None"}
    loaded, unused = parse_settings(deforum)
    assert (loaded.num_frames, loaded.cadence, loaded.border, loaded.color_coherence) == (40, 2, "replicate", "lab")
    assert loaded.prompts == {0: "a forest", 20: "a city"} and loaded.angle == "0:(1)"
    assert unused == ["perlin_octaves", "hybrid_motion"] and "perlin_octaves, hybrid_motion" in unused_note(unused)
    with pytest.raises(ValueError, match="max_frames should be a whole number"):
        parse_settings({"max_frames": 2.5})
    with pytest.raises(ValueError, match="zoom should be a schedule"):
        parse_settings({"zoom": 1.02})
    with pytest.raises(ValueError, match="animation_prompts should map"):
        parse_settings({"animation_prompts": ["a"]})
