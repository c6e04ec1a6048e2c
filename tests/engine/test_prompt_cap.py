"""The prompt cap (--max-prompt-tokens) on the tiny model: every job that takes a prompt refuses one over it, first."""
from __future__ import annotations

import time

import pytest

from engine.image.generate import image_to_image, text_to_image
from engine.image.request import ImageRequest
from engine.pipeline.manager import PipelineManager, RuntimeOptions
from engine.text import prompts
from engine.video.animate import AnimateRequest, animate
from engine.video.motion.text2video import Text2VideoRequest, text_to_video
from engine.video.run_folder import RunPaths
from engine.video.walk import latent_walk
from engine.video.walk_request import WalkRequest, dream_request
from engine.xyz import PlotRequest, plan_plot, run_plot

FAST = dict(num_inference_steps=1, width=64, height=64, sampler="Euler", seed=1)
OVER = "cat " * 1001  # 1,001 CLIP tokens: one "cat" is one token


@pytest.fixture
def capped(tiny_manager, monkeypatch):
    """The shared tiny manager with its cap set as --max-prompt-tokens would set it."""
    def cap(tokens: int):
        monkeypatch.setattr(tiny_manager.options, "max_prompt_tokens", tokens)
        return tiny_manager
    return cap


def test_the_cap_is_1000_clip_tokens_and_the_sentence_says_so(tiny_manager):
    tiny_manager.check_prompt("cat " * 1000)  # exactly at the cap
    with pytest.raises(ValueError, match=r"^The prompt is 1,001 CLIP tokens long; the cap is 1,000 tokens\."):
        text_to_image(tiny_manager, ImageRequest(prompt=OVER, **FAST))
    with pytest.raises(ValueError, match=r"^The negative prompt is 1,001 CLIP tokens long; the cap is 1,000"):
        text_to_image(tiny_manager, ImageRequest(prompt="a cat", negative_prompt=OVER, **FAST))
    with pytest.raises(ValueError, match="The prompt is 1,001 CLIP tokens"):
        tiny_manager.encode(OVER)  # whatever job encodes a prompt meets the cap there too


def test_a_break_counts_the_rest_of_its_chunk(tiny_manager):
    tiny_manager.check_prompt(" BREAK ".join(["cat"] * 14))  # 13 full chunks and one token: 976
    with pytest.raises(ValueError, match="1,051 CLIP tokens long \\(a BREAK fills the rest of its 75-token chunk\\)"):
        tiny_manager.check_prompt(" BREAK ".join(["cat"] * 15))


def test_a_huge_prompt_is_refused_by_its_length_before_the_tokenizer_sees_it(tiny_manager, monkeypatch, photo_64):
    def never(*_):
        raise AssertionError("the tokenizer was reached")

    monkeypatch.setattr(prompts, "weighted_chunks", never)
    huge = "a" * 10_000_000
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"10,000,000 characters long; the cap is 1,000 CLIP tokens \(at most "
                                         r"32,000 characters\)"):
        image_to_image(tiny_manager, ImageRequest(prompt=huge, **FAST), photo_64)
    with pytest.raises(ValueError, match="The negative prompt is 10,000,000 characters"):
        tiny_manager.encode("a cat", huge)
    assert time.perf_counter() - start < 1


def test_the_flag_sets_the_cap(capped):
    manager = capped(80)
    with pytest.raises(ValueError, match="is 100 CLIP tokens long; the cap is 80 tokens"):
        text_to_image(manager, ImageRequest(prompt="cat " * 100, **FAST))
    assert text_to_image(capped(1000), ImageRequest(prompt="cat " * 100, **FAST)).images
    with pytest.raises(ValueError, match="--max-prompt-tokens must be a whole number from 1"):
        PipelineManager("tiny", RuntimeOptions(device="cpu", max_prompt_tokens=0))


def test_walks_and_dreams_check_every_prompt_before_any_file(tiny_manager, tmp_path):
    paths = RunPaths.in_folder(tmp_path / "walk", "walk")
    settings = {k: v for k, v in FAST.items() if k != "seed"}
    with pytest.raises(ValueError, match="^Prompt 2 is 1,001 CLIP tokens long"):
        latent_walk(tiny_manager, WalkRequest(prompts=["a cat", OVER], num_frames=4, **settings), paths)
    dream = dream_request(OVER, 3, num_frames=4, **settings)
    with pytest.raises(ValueError, match="^The prompt is 1,001 CLIP tokens long"):
        latent_walk(tiny_manager, dream, paths)
    assert not (tmp_path / "walk").exists()


def test_animate_checks_each_keyframed_prompt_before_any_file(tiny_manager, tmp_path):
    paths = RunPaths(frames=tmp_path / "anim-frames", video=tmp_path / "anim.mp4")
    with pytest.raises(ValueError, match="^The prompt at frame 12 is 1,001 CLIP tokens long; the cap is 1,000"):
        animate(tiny_manager, AnimateRequest(prompts={0: "a forest", 12: OVER}, num_frames=16, cadence=1, **FAST),
                paths)
    assert not list(tmp_path.iterdir())


def test_text_to_video_checks_its_frame_prompts_first(tiny_manager, tmp_path):
    req = Text2VideoRequest(prompt="a cat", frame_prompts=f"4: {OVER}", num_frames=8, num_inference_steps=1,
                            width=64, height=64)
    with pytest.raises(ValueError, match="^The prompt at frame 4 is 1,001 CLIP tokens long"):
        text_to_video(tiny_manager, req, RunPaths.in_folder(tmp_path / "clip", "clip"))


def test_prompt_search_replace_is_measured_before_it_is_made(tiny_manager):
    base = ImageRequest(prompt="a " * 10_000, **FAST)  # 20,000 characters, 10,000 places to replace
    req = PlotRequest(base, x="Prompt S/R: a, " + "b" * 100)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"X axis \(Prompt S/R\): with 'bbbb.*, the prompt is 1,010,000 characters "
                                         "long; the cap is 1,000 CLIP tokens"):
        plan_plot(req)
    assert time.perf_counter() - start < 0.5
    assert plan_plot(req, max_prompt_tokens=40_000).cells  # the manager's cap decides


def test_a_plot_checks_every_cells_prompt_before_the_first_cell(tiny_manager):
    steps = []
    req = PlotRequest(ImageRequest(prompt="a red apple", **FAST), x="Prompt S/R: red, green, " + "blue " * 1000)
    with pytest.raises(ValueError, match=r"^The prompt \('Prompt S/R: blue blue.*is 1,002 CLIP tokens long"):
        run_plot(tiny_manager, req, on_step=steps.append)
    assert steps == []
