"""Resume in the Text to video tab through gradio_client: a stopped clip continues; other settings are refused."""
import numpy as np
import pytest
from PIL import Image

from engine.files.outputs import task_dir
from engine.image.request import RunControl
from engine.pipeline.manager import PipelineManager, RuntimeOptions
from engine.video.motion.text2video import Text2VideoRequest, text_to_video
from engine.video.run_folder import RunPaths
from tests.app.test_text2video_client import CLIP

FORM = {**CLIP, "num_inference_steps": 3, "gif": False}


def test_resume_continues_a_stopped_clip_and_refuses_other_settings(client, server):
    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"))
    control = RunControl()
    req = Text2VideoRequest(**{k: v for k, v in FORM.items()})
    paths = RunPaths.in_folder(task_dir("text2video") / "stopped-by-test", "text2video")
    stopped = text_to_video(manager, req, paths, lambda update: control.stop(), control)
    assert stopped.interrupted and stopped.steps_done == 1
    with pytest.raises(Exception, match="made with Steps 3, not 5"):
        client.predict(**{**FORM, "num_inference_steps": 5}, run=str(paths.plan), api_name="/text2video_resume")
    player, frames, files, first, info, estimate, run = client.predict(**FORM, run=str(paths.plan),
                                                                       api_name="/text2video_resume")
    assert "Resumed from step 1 of 3" in info and run == "" and len(frames) == 8
    whole = text_to_video(manager, req, RunPaths.in_folder(task_dir("text2video") / "whole-by-test", "text2video"))
    got = [np.asarray(Image.open(f["image"] if isinstance(f, dict) else f[0] if isinstance(f, (list, tuple)) else f))
           for f in frames]
    assert all(np.array_equal(a, np.asarray(Image.open(b))) for a, b in zip(got, whole.frames, strict=True))
    with pytest.raises(Exception, match="Only runs in the app's output folder"):
        client.predict(**FORM, run="/tmp/elsewhere.json", api_name="/text2video_resume")
