"""The Animate tab through gradio_client: a run, resume of a stopped run, settings files, and bad input."""
import json

import pytest

from engine import video

ANIMATE = dict(prompts="0: a forest\n2: a desert", negative_prompt="", mode="2D", num_frames=4, fps=4, cadence=2,
               strength="0:(0.5)", zoom="0:(1.04)", angle="0:(1)", translation_x="0:(0)", translation_y="0:(0)",
               translation_z="0:(0)", rotation_3d_x="0:(0)", rotation_3d_y="0:(0)", rotation_3d_z="0:(0)",
               fov="0:(70)", guidance="0:(7)", noise="0:(0.02)", color_coherence="LAB", border="replicate", seed=5,
               seed_behavior="iter", num_inference_steps=3, sampler="Euler", width=64, height=64, prompt_blend=0,
               init_image=None, video=None, nth=1, gif=False, fast=False)


def test_animate_over_the_api_returns_video_frames_and_deforum_settings(client):
    player, frames, files, latest, info, plan = client.predict(**ANIMATE, api_name="/animate")
    assert video.video_info(player)["frames"] == 4 and len(frames) == 4 and plan == ""
    assert "Seed: 5 (iter); 2 frames diffused" in info
    settings = next(f for f in files if str(f).endswith("-settings.json"))
    data = json.loads(open(settings).read())
    assert data["animation_prompts"] == {"0": "a forest", "2": "a desert"} and data["diffusion_cadence"] == 2


def test_settings_file_fills_the_form_and_names_unused_keys(client, tmp_path):
    from gradio_client import handle_file

    path = tmp_path / "deforum.json"
    path.write_text(json.dumps({"animation_mode": "3D", "max_frames": 30, "translation_z": "0:(3)",
                                "animation_prompts": {"0": "a cave", "10": "a lake"}, "perlin_w": 8}))
    values = client.predict(file=handle_file(str(path)), api_name="/animate_load_settings")
    assert values[0] == "0: a cave\n10: a lake" and values[2] == "3D" and values[3] == 30
    assert values[-1] == "Not used from the settings file: perlin_w."
    path.write_text("{not json")
    with pytest.raises(Exception, match="is not JSON"):
        client.predict(file=handle_file(str(path)), api_name="/animate_load_settings")


@pytest.mark.parametrize("change, says", [
    ({"zoom": "0:(__import__('os'))"}, "calls '__import__'"),
    ({"zoom": "0:(1), 3:(0)"}, "Zoom must stay above 0"),
    ({"angle": "0:(1) 2:(3)"}, "angle schedule can't be read at position"),
    ({"mode": "Video input"}, "needs a source video"),
])
def test_bad_input_gets_a_sentence(client, change, says):
    with pytest.raises(Exception, match=says.replace("(", r"\(").replace(")", r"\)")):
        client.predict(**{**ANIMATE, **change}, api_name="/animate")


def test_resume_without_a_stopped_run_says_so(client):
    with pytest.raises(Exception, match="no stopped run"):
        client.predict(plan="", api_name="/animate_resume")
