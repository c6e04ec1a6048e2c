import json

import numpy as np
import pytest
from PIL import Image

from engine import video
from engine.image.request import RunControl
from engine.video import interpolation
from engine.video.run_folder import RunPaths
from engine.video.walk import latent_walk, resume
from engine.video.walk_request import (
    MAX_FRAMES,
    WalkRequest,
    check_walk,
    dream_request,
    notes_for,
    parse_prompts,
    parse_seeds,
)

FAST = dict(num_inference_steps=3, width=64, height=64, sampler="Euler", fps=8)


def walk_req(**kw):
    return WalkRequest(**{"prompts": ["a cat", "a dog", "a red house"], "seeds": [1, 2, 3], "num_frames": 12,
                          **FAST, **kw})


def frames_of(result):
    return [np.asarray(Image.open(p)) for p in result.frames]


def test_walk_video_is_h264_yuv420p_with_exact_frames_and_duration(tiny_manager, tmp_path):
    result = latent_walk(tiny_manager, walk_req(), RunPaths.in_folder(tmp_path, "walk"))
    info = video.video_info(result.video)
    assert (info["codec"], info["pix_fmt"], info["frames"]) == ("h264", "yuv420p", 12)
    assert info["duration"] == pytest.approx(12 / 8, abs=0.01)
    frames = frames_of(result)
    assert all(not np.array_equal(a, b) for a, b in zip(frames, frames[1:]))
    meta = video.read_metadata(result.video)
    assert meta["prompts"] == ["a cat", "a dog", "a red house"] and meta["seeds"] == [1, 2, 3]
    assert meta["fps"] == 8 and meta["sampler"] == "Euler" and meta["num_inference_steps"] == 3
    beside = json.loads(result.plan.read_text())
    assert beside["request"]["prompts"] == meta["prompts"] and result.plan == result.video.with_suffix(".json")


def test_same_settings_give_the_same_video(tiny_manager, tmp_path):
    a = latent_walk(tiny_manager, walk_req(num_frames=6), RunPaths.in_folder(tmp_path / "a", "walk"))
    b = latent_walk(tiny_manager, walk_req(num_frames=6), RunPaths.in_folder(tmp_path / "b", "walk"))
    assert all(np.array_equal(x, y) for x, y in zip(frames_of(a), frames_of(b)))


def test_keyframes_are_hit_and_boundaries_are_not_repeated(tiny_manager, tmp_path):
    result = latent_walk(tiny_manager, walk_req(prompts=["a cat", "a dog"], seeds=[1, 2], num_frames=5),
                         RunPaths.in_folder(tmp_path, "walk"))
    plan = json.loads(result.plan.read_text())
    assert plan["positions"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    looped = latent_walk(tiny_manager, walk_req(prompts=["a cat", "a dog"], seeds=[1, 2], num_frames=4, loop=True),
                         RunPaths.in_folder(tmp_path / "loop", "walk"))
    assert json.loads(looped.plan.read_text())["positions"] == [0.0, 0.5, 1.0, 1.5]


def test_prompts_are_encoded_once_per_prompt_not_per_frame(tiny_manager, tmp_path, monkeypatch):
    calls = []
    original = tiny_manager.encode
    monkeypatch.setattr(tiny_manager, "encode", lambda *a, **k: calls.append(a) or original(*a, **k))
    latent_walk(tiny_manager, walk_req(num_frames=9, batch_size=3), RunPaths.in_folder(tmp_path, "walk"))
    assert len(calls) == 3


def test_batching_gives_the_same_frames(tiny_manager, tmp_path):
    one = latent_walk(tiny_manager, walk_req(num_frames=6), RunPaths.in_folder(tmp_path / "1", "walk"))
    three = latent_walk(tiny_manager, walk_req(num_frames=6, batch_size=3), RunPaths.in_folder(tmp_path / "3", "walk"))
    for a, b in zip(frames_of(one), frames_of(three)):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.0


def test_smooth_mode_evens_out_the_change_between_frames(tiny_manager, tmp_path):
    req = walk_req(prompts=["a cat", "a dog"], seeds=[11, 12], num_frames=16)
    plain = frames_of(latent_walk(tiny_manager, req, RunPaths.in_folder(tmp_path / "plain", "walk")))
    req.smooth = True
    smooth = frames_of(latent_walk(tiny_manager, req, RunPaths.in_folder(tmp_path / "smooth", "walk")))

    def ratio(frames):
        return interpolation.max_over_mean([interpolation.frame_distance(a, b) for a, b in zip(frames, frames[1:])])
    assert ratio(smooth) < ratio(plain) - 0.05


def test_stop_keeps_frames_and_returns_a_playable_video_then_resume_finishes(tiny_manager, tmp_path):
    control = RunControl()

    def on_frame(update):
        if update.index == 4:
            control.stop()

    paths = RunPaths.in_folder(tmp_path / "stopped", "walk")
    stopped = latent_walk(tiny_manager, walk_req(num_frames=10, batch_size=2), paths, on_frame, control)
    assert stopped.interrupted and len(stopped.frames) == 4
    assert video.video_info(stopped.video)["frames"] == 4
    done = resume(tiny_manager, stopped.plan)
    assert not done.interrupted and len(done.frames) == 10 and video.video_info(done.video)["frames"] == 10
    whole = latent_walk(tiny_manager, walk_req(num_frames=10, batch_size=2), RunPaths.in_folder(tmp_path / "w", "walk"))
    assert all(np.array_equal(a, b) for a, b in zip(frames_of(done), frames_of(whole)))


def test_dream_walks_one_prompt_through_seeds_counting_up(tiny_manager, tmp_path):
    req = dream_request("a forest", 3, seed=40, num_frames=6, **FAST)
    assert req.seeds == [40, 41, 42] and req.prompts == ["a forest"] * 3
    result = latent_walk(tiny_manager, req, RunPaths.in_folder(tmp_path, "dream"))
    assert video.video_info(result.video)["frames"] == 6
    assert video.read_metadata(result.video)["kind"] == "dream"


def test_ancestral_sampler_gets_a_warning():
    assert any("flicker" in n for n in notes_for(walk_req(sampler="Euler a")))
    assert not any("flicker" in n for n in notes_for(walk_req(sampler="DDIM")))


@pytest.mark.parametrize("changes, message", [
    (dict(prompts=["only one"], seeds=[]), "at least 2 prompts"),
    (dict(num_frames=1), "Frames must be"), (dict(num_frames=MAX_FRAMES + 1), "Frames must be"),
    (dict(fps=0), "Frames per second"), (dict(fps=61), "Frames per second"),
    (dict(seeds=[1, 2, 3, 4]), "4 seeds for 3 prompts"), (dict(prompts=["a", " ", "c"]), "Prompt 2 is empty"),
    (dict(num_inference_steps=0), "Steps must be"),
])
def test_bad_walk_settings_get_one_sentence(changes, message):
    with pytest.raises(ValueError, match=message):
        check_walk(walk_req(**changes))


def test_typed_prompts_and_seeds_are_parsed_with_clear_errors():
    assert parse_prompts("a cat\na dog\n\n") == ["a cat", "a dog"]
    with pytest.raises(ValueError, match="line 2 is empty"):
        parse_prompts("a cat\n\na dog")
    assert parse_seeds("1, random\n-1, 7") == [1, None, None, 7]
    with pytest.raises(ValueError, match="not a whole number"):
        parse_seeds("1, 2.5")


def test_unwritable_output_folder_is_reported(tiny_manager, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="can't be written"):
        latent_walk(tiny_manager, walk_req(), RunPaths(frames=blocker / "frames", video=tmp_path / "w.mp4"))


def test_resume_refuses_another_model_and_the_cli_takes_the_plans(tiny_manager, tmp_path, capsys):
    from engine.cli import main
    from engine.pipeline.manager import PipelineManager

    control = RunControl()
    paths = RunPaths.in_folder(tmp_path / "stopped", "walk")
    stopped = latent_walk(tiny_manager, walk_req(num_frames=4), paths, lambda u: control.stop(), control)
    plan = json.loads(stopped.plan.read_text())
    assert plan["model_name"] == "tiny"
    with pytest.raises(ValueError, match="made with the model tiny; switch to it"):
        resume(PipelineManager("weights/other.safetensors"), stopped.plan)
    assert main(["walk", "--resume", str(stopped.plan), "--model", "other"]) == 2
    assert "made with --model tiny" in capsys.readouterr().err
    assert main(["walk", "--resume", str(stopped.plan), "--dtype", "float32"]) == 0  # no --model: the plan's
    assert video.video_info(stopped.video)["frames"] == 4
