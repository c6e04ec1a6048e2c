"""Resume in Text to video: a clip stopped part-way continues from its saved latents to the uninterrupted frames."""
import json

import numpy as np
import pytest
from PIL import Image

from engine.image.request import RunControl
from engine.video.motion import resume as saved_steps
from engine.video.motion.text2video import Text2VideoRequest, resume_text_to_video, text_to_video
from engine.video.run_folder import RunPaths

CLIP = dict(prompt="a cat walking", num_frames=8, num_inference_steps=4, width=64, height=64, seed=5)


def pixels(result):
    return [np.asarray(Image.open(p)) for p in result.frames]


def stopped_after(manager, req, folder, steps):
    control = RunControl()

    def on_step(update):
        if update.step >= steps:
            control.stop()

    paths = RunPaths.in_folder(folder, "clip")
    result = text_to_video(manager, req, paths, on_step, control)
    assert result.interrupted and result.steps_done == steps
    return paths


@pytest.mark.parametrize("sampler", ["DDIM", "Euler a", "DPM++ 2M Karras"])
def test_a_resumed_clip_has_the_frames_of_an_uninterrupted_one(tiny_manager, tmp_path, sampler):
    req = Text2VideoRequest(**CLIP, sampler=sampler)
    whole = text_to_video(tiny_manager, req, RunPaths.in_folder(tmp_path / "whole", "clip"))
    assert not saved_steps.checkpoint_path(RunPaths.in_folder(tmp_path / "whole", "clip")).exists()
    paths = stopped_after(tiny_manager, req, tmp_path / "cut", 2)
    assert saved_steps.load(saved_steps.checkpoint_path(paths))["step"] == 2
    resumed = resume_text_to_video(tiny_manager, tmp_path / "cut")
    assert resumed.steps_done == 4 and not resumed.interrupted
    assert any("Resumed from step 2 of 4" in note for note in resumed.notes)
    assert all(np.array_equal(a, b) for a, b in zip(pixels(whole), pixels(resumed), strict=True))
    assert json.loads(paths.plan.read_text())["steps_done"] == 4
    with pytest.raises(ValueError, match="already finished"):
        resume_text_to_video(tiny_manager, tmp_path / "cut")


def test_resuming_with_other_settings_is_refused_in_a_sentence(tiny_manager, tmp_path):
    req = Text2VideoRequest(**CLIP)
    stopped_after(tiny_manager, req, tmp_path / "cut", 1)
    for change, says in (({"num_inference_steps": 6}, "made with Steps 4, not 6"),
                         ({"prompt": "a dog"}, "Prompt 'a cat walking'"), ({"seed": 7}, "Seed 5")):
        with pytest.raises(ValueError, match=says):
            resume_text_to_video(tiny_manager, tmp_path / "cut", asked=Text2VideoRequest(**{**CLIP, **change}))
    with pytest.raises(ValueError, match="not a Text to video run"):
        resume_text_to_video(tiny_manager, tmp_path / "nowhere")
    done = resume_text_to_video(tiny_manager, tmp_path / "cut", asked=Text2VideoRequest(**{**CLIP, "seed": -1}))
    assert done.steps_done == 4


def test_the_cli_resumes_a_run_folder(tiny_manager, tmp_path, capsys):
    from engine.cli import main

    out = tmp_path / "clip.mp4"
    stopped_after(tiny_manager, Text2VideoRequest(**CLIP), tmp_path, 1)
    plan = tmp_path / "clip.json"
    assert plan.exists()
    assert main(["text2video", "--model", "tiny", "--resume", str(tmp_path), "--steps", "9"]) == 2
    assert "made with Steps 4, not 9" in capsys.readouterr().err
    assert main(["text2video", "--model", "tiny", "--resume", str(tmp_path)]) == 0
    assert "Resumed from step 1 of 4" in capsys.readouterr().err and out.exists()
