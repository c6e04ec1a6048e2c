"""Long videos in chunks (ZeroGPU runs each chunk as its own GPU call): rendering a planned run a few frames at a
time, then encoding it without the model, gives the frames and video of one uninterrupted run."""
import numpy as np
from PIL import Image

from engine.video import walk, walk_request
from engine.video.animate import AnimateRequest, animate
from engine.video.animate import run as animate_run
from engine.video.run_folder import RunPaths


def pixels(paths):
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def in_chunks(render_chunk, plan, size):
    """Call `render_chunk(plan, size)` until every frame is made; the frames on disk after each call."""
    counts = []
    while True:
        made, total = render_chunk(plan, size)
        counts.append(made)
        if made == total:
            return counts


def test_a_smooth_walk_in_chunks_equals_one_run(tiny_manager, tmp_path):
    req = walk_request.WalkRequest(prompts=["a cat", "a dog"], seeds=[4, 5], num_frames=5, num_inference_steps=2, width=64,
                           height=64, sampler="Euler", smooth=True, loop=True, batch_size=2)
    alone = walk.latent_walk(tiny_manager, req, RunPaths.in_folder(tmp_path / "alone", "walk"))
    plan = walk.start(tiny_manager, req, RunPaths.in_folder(tmp_path / "chunks", "walk"))
    counts = in_chunks(lambda p, n: walk.render_chunk(tiny_manager, p, n), plan, 2)
    # 6 probes (5 frames and the loop's end) measure the path, then 5 frames: whole batches of 2 a call
    assert counts == [2, 4, 6, 8, 10, 11]
    assert not (plan.parent / "frames" / "probes").exists()  # removed once the spacing is known
    result = walk.finish(plan)
    assert not result.interrupted
    assert all(np.array_equal(a, b) for a, b in zip(pixels(result.frames), pixels(alone.frames), strict=True))
    assert result.video.read_bytes() == alone.video.read_bytes()


def test_finishing_a_walk_needs_no_model(tiny_manager, tmp_path, monkeypatch):
    req = walk_request.WalkRequest(prompts=["a cat", "a dog"], seeds=[4, 5], num_frames=3, num_inference_steps=2, width=64,
                           height=64, sampler="Euler")
    plan = walk.start(tiny_manager, req, RunPaths.in_folder(tmp_path, "walk"))
    assert walk.render_chunk(tiny_manager, plan, 2) == (2, 3)
    monkeypatch.setattr(type(tiny_manager), "base", lambda self: (_ for _ in ()).throw(AssertionError("GPU")))
    result = walk.finish(plan)  # outside any GPU call: encodes what exists
    assert result.interrupted and len(result.frames) == 2 and result.video.exists()


def test_an_animation_in_chunks_equals_one_run_even_where_frames_carry_the_watermark(tiny_manager, tmp_path):
    # 256 px: saved frames carry the invisible watermark, so a chunk continuing from saved frames must match a run
    # that kept going in memory
    req = AnimateRequest(prompts={0: "a forest"}, num_frames=7, cadence=2, width=256, height=256,
                         num_inference_steps=2, sampler="Euler", seed=3, fps=8, zoom="0:(1.05)", noise="0:(0.02)")
    alone = animate(tiny_manager, req, RunPaths.in_folder(tmp_path / "alone", "anim"))
    plan = animate_run.start(tiny_manager, req, RunPaths.in_folder(tmp_path / "chunks", "anim"))
    counts = in_chunks(lambda p, n: animate_run.render_chunk(tiny_manager, p, n), plan, 2)
    assert len(counts) == 4 and counts[-1] == 7  # segments of 2 frames: 2, 4, 6, 7
    result = animate_run.finish(plan)
    assert not result.interrupted and result.diffusions == 4
    assert all(np.array_equal(a, b) for a, b in zip(pixels(result.frames), pixels(alone.frames), strict=True))
    assert result.video.read_bytes() == alone.video.read_bytes()
