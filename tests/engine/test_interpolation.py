"""engine.video.interpolation: slerp/lerp, frame placement without repeated boundaries, and smooth re-spacing."""

import numpy as np
import pytest
import torch

from engine.video import interpolation as ip

# ---------------------------------------------------------------- slerp / lerp


def _pair(shape=(4, 8, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def test_slerp_endpoints_are_exact():
    v0, v1 = _pair()
    assert torch.allclose(ip.slerp(0.0, v0, v1), v0, atol=1e-6)
    assert torch.allclose(ip.slerp(1.0, v0, v1), v1, atol=1e-6)
    assert ip.slerp(0.3, v0, v1).shape == v0.shape
    assert ip.slerp(0.3, v0, v1).dtype == v0.dtype


def test_slerp_keeps_unit_vectors_on_the_sphere():
    v0, v1 = _pair((256,))
    v0, v1 = v0 / v0.norm(), v1 / v1.norm()
    for t in np.linspace(0, 1, 11):
        assert ip.slerp(float(t), v0, v1).norm().item() == pytest.approx(1.0, abs=1e-5)
    assert ip.lerp(0.5, v0, v1).norm().item() < 0.9  # what slerp avoids


def test_slerp_matches_the_angle():
    v0 = torch.tensor([1.0, 0.0])
    v1 = torch.tensor([0.0, 1.0])
    mid = ip.slerp(0.5, v0, v1)
    assert torch.allclose(mid, torch.tensor([0.5**0.5, 0.5**0.5]), atol=1e-6)


def test_slerp_falls_back_to_lerp_when_nearly_parallel():
    v0, _ = _pair((64,))
    v1 = v0 * 1.5 + 1e-4 * torch.ones(64)
    assert torch.allclose(ip.slerp(0.25, v0, v1), ip.lerp(0.25, v0, v1))
    v1 = -v0  # antiparallel: the angle is ill-defined too
    assert torch.allclose(ip.slerp(0.25, v0, v1), ip.lerp(0.25, v0, v1))
    zero = torch.zeros(64)
    assert torch.allclose(ip.slerp(0.5, zero, v0), 0.5 * v0)


def test_slerp_keeps_low_precision_dtype():
    v0, v1 = _pair()
    out = ip.slerp(0.5, v0.bfloat16(), v1.bfloat16())
    assert out.dtype == torch.bfloat16


@pytest.mark.parametrize("fn", [ip.slerp, ip.lerp])
def test_interpolation_rejects_bad_input(fn):
    v0, v1 = _pair()
    with pytest.raises(ValueError):
        fn(1.5, v0, v1)
    with pytest.raises(ValueError):
        fn(0.5, v0, v1[:2])


# ---------------------------------------------------------------- keyframe_positions


CASES = [(2, 2), (2, 10), (3, 5), (3, 7), (4, 24), (5, 3), (7, 100)]


@pytest.mark.parametrize("keys, frames", CASES)
@pytest.mark.parametrize("loop", [False, True])
def test_keyframe_positions_have_no_duplicates_and_even_spacing(keys, frames, loop):
    positions = ip.keyframe_positions(keys, frames, loop=loop)
    assert len(positions) == frames
    glob = np.array([s + t for s, t in positions])
    assert len(set(np.round(glob, 12))) == frames
    steps = np.diff(glob)
    assert np.all(steps > 0)
    assert np.allclose(steps, steps[0])
    for segment, t in positions[:-1] if not loop else positions:
        assert 0 <= segment < (keys if loop else keys - 1)
        assert 0.0 <= t < 1.0


@pytest.mark.parametrize("keys, frames", CASES)
def test_plain_walk_starts_and_ends_on_keyframes(keys, frames):
    positions = ip.keyframe_positions(keys, frames)
    assert positions[0] == (0, 0.0)
    assert positions[-1] == (keys - 2, 1.0)


@pytest.mark.parametrize("keys, frames", CASES)
def test_loop_closes_without_repeating_keyframe_zero(keys, frames):
    positions = ip.keyframe_positions(keys, frames, loop=True)
    assert positions[0] == (0, 0.0)
    assert positions[-1][1] < 1.0
    glob = [s + t for s, t in positions]
    assert glob[-1] + keys / frames == pytest.approx(keys)  # one more step lands on keyframe 0


def test_every_keyframe_is_hit_exactly_when_spacing_allows():
    positions = ip.keyframe_positions(4, 10)  # 3 frames per segment
    assert [positions[i] for i in (0, 3, 6)] == [(0, 0.0), (1, 0.0), (2, 0.0)]
    assert positions[-1] == (2, 1.0)
    looped = ip.keyframe_positions(3, 12, loop=True)
    assert [looped[i] for i in (0, 4, 8)] == [(0, 0.0), (1, 0.0), (2, 0.0)]


@pytest.mark.parametrize("keys, frames", [(1, 10), (3, 1), (3, 0), (2.0, 5)])
def test_keyframe_positions_rejects_too_few(keys, frames):
    with pytest.raises(ValueError):
        ip.keyframe_positions(keys, frames)


def test_position_to_segment_round_trips():
    for keys, frames, loop in [(4, 24, False), (3, 10, True), (2, 5, False)]:
        for segment, t in ip.keyframe_positions(keys, frames, loop):
            s, u = ip.position_to_segment(segment + t, keys, loop)
            assert s == segment and u == pytest.approx(t)
    assert ip.position_to_segment(3.0, 4, False) == (2, 1.0)
    assert ip.position_to_segment(4.0, 4, True) == (0, 0.0)
    with pytest.raises(ValueError):
        ip.position_to_segment(3.5, 4, False)


# ---------------------------------------------------------------- smooth mode


def _render(p):
    """A synthetic walk whose picture changes mostly near the end (like a bunched latent walk)."""
    level = 255 * (p / 2.0) ** 4  # positions 0..2 (3 keyframes)
    yy, xx = np.mgrid[0:48, 0:64]
    frame = np.stack([np.full((48, 64), level), xx * 2.0, yy * 3.0 + level * 0.2], axis=2)
    return np.clip(frame, 0, 255).astype(np.uint8)


def _distances(positions):
    frames = [_render(p) for p in positions]
    return np.array([ip.frame_distance(a, b) for a, b in zip(frames, frames[1:])])


def test_frame_distance_basics():
    a = _render(0.5)
    assert ip.frame_distance(a, a) == 0.0
    assert 0.0 < ip.frame_distance(a, _render(1.5)) <= 1.0
    assert ip.frame_distance(a, _render(1.0)) < ip.frame_distance(a, _render(2.0))
    assert ip.frame_distance(np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8)) == pytest.approx(0.6, abs=0.01)
    with pytest.raises(ValueError):
        ip.frame_distance(a, a[:, :10])


def test_frame_distance_ignores_fine_grain_more_than_real_change():
    rng = np.random.default_rng(0)
    base = _render(1.0)
    grain = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
    assert ip.frame_distance(base, grain) < 0.3 * ip.frame_distance(base, _render(1.6))


def test_respace_makes_change_between_frames_more_uniform():
    probes = np.linspace(0, 2, 17)
    before = _distances(np.linspace(0, 2, 24))
    new = ip.respace(probes, _distances(probes), 24)
    after = _distances(new)
    assert new[0] == 0.0 and new[-1] == 2.0 and len(new) == 24
    assert np.all(np.diff(new) > 0)
    assert ip.max_over_mean(before) > 2.5
    assert ip.max_over_mean(after) < 1.5
    assert ip.max_over_mean(after) < 0.5 * ip.max_over_mean(before)


def test_respace_inverts_a_known_arc_length():
    positions = np.array([0.0, 1.0, 2.0])
    new = ip.respace(positions, np.array([1.0, 3.0]), 5)  # total 4: targets 0,1,2,3,4
    assert np.allclose(new, [0.0, 1.0, 1 + 1 / 3, 1 + 2 / 3, 2.0])
    flat = ip.respace(positions, np.array([0.0, 0.0]), 3)
    assert np.allclose(flat, [0.0, 1.0, 2.0])
    gap = ip.respace(np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 0.0, 1.0]), 5)
    assert np.all(np.diff(gap) > 0)


@pytest.mark.parametrize(
    "positions, distances, count",
    [([0.0, 1.0], [1.0, 1.0], 3), ([1.0, 0.0], [1.0], 3), ([0.0, 1.0], [-1.0], 3), ([0.0, 1.0], [1.0], 1), ([0.0], [], 3)],
)
def test_respace_rejects_bad_input(positions, distances, count):
    with pytest.raises(ValueError):
        ip.respace(np.array(positions), np.array(distances), count)


def test_max_over_mean():
    assert ip.max_over_mean([1.0, 1.0, 1.0]) == 1.0
    assert ip.max_over_mean([1.0, 1.0, 4.0]) == pytest.approx(2.0)
    assert ip.max_over_mean([0.0, 0.0]) == 1.0
    with pytest.raises(ValueError):
        ip.max_over_mean([])
