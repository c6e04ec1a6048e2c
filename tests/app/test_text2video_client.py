"""The Text to video tab through gradio_client: a clip on the tiny adapter, and bad input."""
import json

import pytest

from engine import video

CLIP = dict(prompt="a cat walking", negative_prompt="", frame_prompts="", num_frames=8, fps=8, num_inference_steps=2,
            guidance_scale=7.5, seed=1, width=64, height=64, sampler="DDIM", free_noise=False, gif=True,
            motion_adapter=None)


def test_text2video_over_the_api_returns_the_clip_its_frames_and_settings(client):
    player, frames, files, first, info, estimate, run = client.predict(**CLIP, api_name="/text2video")
    assert video.video_info(player)["frames"] == 8 and len(frames) == 8
    assert any(str(f).endswith(".gif") for f in files)
    settings = json.loads(open(next(f for f in files if str(f).endswith(".json"))).read())
    assert settings["seed"] == 1 and settings["motion_adapter"] == "tiny"
    assert "Seed: 1" in info and "Estimated time" in estimate


@pytest.mark.parametrize("change, says", [
    ({"frame_prompts": "4 a dog"}, "no frame number"),
    ({"prompt": ""}, "Write a prompt"),
    ({"frame_prompts": "20: a dog"}, "past the clip's last frame"),
])
def test_bad_input_gets_a_sentence(client, change, says):
    with pytest.raises(Exception, match=says):
        client.predict(**{**CLIP, **change}, api_name="/text2video")


def test_fast_decode_is_a_field_of_both_calls_and_without_taesd_is_refused_in_a_sentence(client):
    from engine.pipeline.models import WEIGHTS_DIR
    from engine.pipeline.tiny_vae import find_taesd

    names = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for api in ("/text2video", "/text2video_resume"):
        fields = {p["parameter_name"]: p["parameter_default"] for p in names[api]["parameters"]}
        assert fields["fast_decode"] is False
    if find_taesd(WEIGHTS_DIR) is None:
        with pytest.raises(Exception, match="Fast decode needs TAESD"):
            client.predict(**CLIP, fast_decode=True, api_name="/text2video")
    else:  # TAESD is in this machine's weights/ or Hugging Face cache: the clip is decoded by it
        files = client.predict(**CLIP, fast_decode=True, api_name="/text2video")[2]
        settings = json.loads(open(next(f for f in files if str(f).endswith(".json"))).read())
        assert settings["VAE Decoder"] == "TAESD"
