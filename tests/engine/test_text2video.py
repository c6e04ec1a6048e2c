"""Text to video on the tiny model and the tiny random motion adapter: frames, MP4, shared weights, Stop, checks."""
import gc
import json

import numpy as np
import pytest
import torch
from PIL import Image

from engine import video
from engine.image.request import RunControl
from engine.video.motion import adapter as motion_adapter
from engine.video.motion.text2video import (
    Text2VideoRequest,
    check_text2video,
    describe_estimate,
    motion_samplers,
    text_to_video,
)
from engine.video.motion.unet import motion_unet, shares_weights
from engine.video.run_folder import RunPaths

SMALL = dict(num_frames=8, num_inference_steps=2, width=64, height=64, seed=1)


def run(manager, tmp_path, name="clip", **fields):
    req = Text2VideoRequest(**{"prompt": "a cat walking", **SMALL, **fields})
    return text_to_video(manager, req, RunPaths.in_folder(tmp_path / name, name))


def test_a_clip_has_the_frames_asked_for_in_an_mp4_with_its_settings(tiny_manager, tmp_path):
    result = run(tiny_manager, tmp_path, gif=True, fps=4)
    assert len(result.frames) == 8 and not result.interrupted and result.steps_done == 2
    info = video.video_info(result.video)
    assert (info["frames"], info["fps"], info["width"], info["height"]) == (8, 4.0, 64, 64)
    settings = video.read_metadata(result.video)
    assert settings["prompt"] == "a cat walking" and settings["seed"] == 1 and settings["sampler"] == "DDIM"
    assert settings["motion_adapter"] == "tiny" and json.loads(result.settings.read_text())["num_frames"] == 8
    assert result.gif.is_file()


def test_the_same_seed_makes_the_same_clip(tiny_manager, tmp_path):
    a, b = run(tiny_manager, tmp_path, "a"), run(tiny_manager, tmp_path, "b")
    first = [np.asarray(Image.open(p)) for p in (a.frames[3], b.frames[3])]
    assert np.array_equal(*first)


def test_the_motion_unet_holds_no_copy_of_the_model_or_the_adapter(tiny_manager):
    base = tiny_manager.base()
    source = motion_adapter.resolve_adapter(None, "tiny", tiny_manager.weights_dir)
    adapter = motion_adapter.shared_adapter(base.unet, source, tiny_manager.dtype)
    assert motion_adapter.shared_adapter(base.unet, source, tiny_manager.dtype) is adapter  # loaded once
    for free_noise in (False, True):
        motion = motion_unet(base.unet, adapter, free_noise=free_noise)
        unet_2d = dict(base.unet.named_parameters())
        temporal = dict(adapter.named_parameters())
        for name, tensor in motion.named_parameters():
            source_tensor = unet_2d.get(name, temporal.get(name))
            assert tensor.data_ptr() == source_tensor.data_ptr(), name
        assert set(unet_2d) <= {n for n, _ in motion.named_parameters()}  # every 2D layer is shared, none copied
        assert shares_weights(motion, base.unet, adapter)


def test_sharing_gives_what_diffusers_own_copy_gives(tiny_manager):
    from diffusers import UNetMotionModel

    base = tiny_manager.base()
    adapter = motion_adapter.build_tiny_adapter()
    copied = UNetMotionModel.from_unet2d(base.unet, adapter)
    shared = motion_unet(base.unet, adapter)
    sample = torch.randn(1, 4, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    text = torch.randn(8, 77, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = copied(sample, 10, encoder_hidden_states=text).sample
        got = shared(sample, 10, encoder_hidden_states=text).sample
    assert torch.allclose(expected, got, atol=1e-5)  # the shared UNet is channels-last: same sums, other order


def test_switching_models_frees_the_adapter():
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"))
    unet = manager.base().unet
    source = motion_adapter.resolve_adapter(None, "tiny", manager.weights_dir)
    motion_adapter.shared_adapter(unet, source, manager.dtype)
    assert unet in motion_adapter._loaded
    gc.collect()  # managers of earlier tests (the CLI's) may still await collection
    before = len(motion_adapter._loaded)
    del unet
    manager.unload()
    gc.collect()
    assert len(motion_adapter._loaded) == before - 1


def test_frame_prompts_run_through_free_noise(tiny_manager, tmp_path):
    result = run(tiny_manager, tmp_path, num_frames=12, frame_prompts="6: a dog running")
    assert len(result.frames) == 12
    assert result.parameters["free_noise"] and any("FreeNoise" in note for note in result.notes)


def test_stop_keeps_the_clip_made_so_far(tiny_manager, tmp_path):
    control = RunControl()

    def stop_after_first(update):
        control.stop()

    req = Text2VideoRequest(prompt="a cat", **{**SMALL, "num_inference_steps": 4})
    result = text_to_video(tiny_manager, req, RunPaths.in_folder(tmp_path / "s", "s"), stop_after_first, control)
    assert result.interrupted and result.steps_done == 1
    assert len(result.frames) == 8 and video.video_info(result.video)["frames"] == 8
    assert any("Stopped at step 1 of 4" in note for note in result.notes)


def test_the_estimate_comes_from_the_measured_step_time(tiny_manager, tmp_path):
    req = Text2VideoRequest(prompt="a cat", **SMALL)
    run(tiny_manager, tmp_path)
    assert "Estimated time" in describe_estimate(tiny_manager, req)
    assert "Video length: 8 frames at 8 fps" in describe_estimate(tiny_manager, req)


@pytest.mark.parametrize("fields, words", [
    ({"num_frames": 7}, "Frames must be a whole number from 8 to 32"),
    ({"num_frames": 33}, "from 8 to 32"),
    ({"prompt": ""}, "Write a prompt"),
    ({"sampler": "LCM"}, "choose DDIM"),
    ({"frame_prompts": "9: a dog"}, "past the clip's last frame"),
    ({"fps": 0}, "fps"),
    ({"num_inference_steps": 0}, "Steps"),
])
def test_bad_requests_get_one_sentence(fields, words):
    with pytest.raises(ValueError, match=words):
        check_text2video(Text2VideoRequest(**{"prompt": "a cat", **SMALL, **fields}))


def test_frame_prompts_start_from_the_main_prompt():
    _, keyed, _ = check_text2video(Text2VideoRequest(prompt="a cat", frame_prompts="4: a dog", **SMALL))
    assert keyed == {0: "a cat", 4: "a dog"}
    assert "LCM" not in motion_samplers() and "DDIM" in motion_samplers()


def test_adapters_are_found_in_weights_and_missing_ones_say_how_to_get_one(tmp_path):
    assert motion_adapter.resolve_adapter(None, "some-model", tmp_path).name == motion_adapter.DEFAULT_ADAPTER
    assert "hf download" in motion_adapter.availability(motion_adapter.resolve_adapter(None, "m", tmp_path))
    folder = tmp_path / "animatediff-motion-adapter-v1-5-2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"_class_name": "MotionAdapter"}))
    (tmp_path / "motion").mkdir()
    (tmp_path / "motion" / "mm_sd_v15_v2.safetensors").write_bytes(b"x")
    assert motion_adapter.local_adapters(tmp_path) == ["animatediff-motion-adapter-v1-5-2",
                                                       "motion/mm_sd_v15_v2.safetensors"]
    assert motion_adapter.resolve_adapter(None, "m", tmp_path).kind == "folder"
    assert motion_adapter.resolve_adapter("motion/mm_sd_v15_v2.safetensors", "m", tmp_path).kind == "file"
    with pytest.raises(ValueError, match="hf download"):
        motion_adapter.resolve_adapter("weights/missing.ckpt", "m", tmp_path)


def test_single_files_are_told_apart_by_their_keys(tmp_path):
    from safetensors.torch import save_file

    pe = motion_adapter.PE_KEY
    for name, tensors, preset in (
        ("v1", {pe: torch.zeros(1, 24, 4)}, "v1-5"),
        ("v2", {pe: torch.zeros(1, 32, 4), motion_adapter.V2_KEY: torch.zeros(4)}, "v1-5-2"),
        ("v3", {pe: torch.zeros(1, 32, 4)}, "v1-5-3"),
    ):
        save_file(tensors, tmp_path / f"{name}.safetensors")
        assert motion_adapter.single_file_config(tmp_path / f"{name}.safetensors").name == preset
    save_file({"other": torch.zeros(1)}, tmp_path / "lora.safetensors")
    with pytest.raises(ValueError, match="not an AnimateDiff"):
        motion_adapter.single_file_config(tmp_path / "lora.safetensors")


def test_cli_writes_the_clip_and_reports_mistakes_in_one_line(tmp_path, capsys):
    from engine.cli import main

    out = tmp_path / "clip.mp4"
    assert main(["text2video", "--model", "tiny", "--prompt", "a cat walking", "--frames", "8", "--steps", "2",
                 "--width", "64", "--height", "64", "--seed", "1", "--fps", "8", "--out", str(out)]) == 0
    assert video.video_info(out)["frames"] == 8
    capsys.readouterr()
    assert main(["text2video", "--model", "tiny", "--prompt", "x", "--frames", "40", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "from 8 to 32" in err
