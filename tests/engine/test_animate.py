"""Animate on the tiny random model (64 px, 2-3 steps): warps, cadence, colour coherence, video input, resume, 3D."""
import json
import math

import cv2
import diffusers
import numpy as np
import pytest
from PIL import Image

from engine import video
from engine.image.request import RunControl
from engine.video.animate import AnimateRequest, animate, resume
from engine.video.animate.color import mean_lab
from engine.video.animate.deforum_settings import read_settings
from engine.video.animate.frames import AnimateUpdate
from engine.video.run_folder import RunPaths

FAST = dict(width=64, height=64, num_inference_steps=3, sampler="Euler", seed=3, fps=8, noise="0:(0.02)")


def paths(folder, name="anim"):
    return RunPaths(frames=folder / f"{name}-frames", video=folder / f"{name}.mp4")


def frames_of(result):
    return [np.asarray(Image.open(p).convert("RGB")) for p in result.frames]


def tiny_depth_model(folder):
    """A random Depth Anything (Dinov2 backbone) of 43k parameters, saved as a real model folder would be."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    backbone = Dinov2Config(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                            image_size=28, patch_size=14, out_features=["stage1", "stage2"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=16, neck_hidden_sizes=[8, 16],
                                 fusion_hidden_size=16, head_hidden_size=8, patch_size=14)
    torch.manual_seed(0)
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=True, ensure_multiple_of=14).save_pretrained(
        folder)
    return folder


@pytest.fixture(scope="module")
def depth_folder(tmp_path_factory):
    return str(tiny_depth_model(tmp_path_factory.mktemp("weights") / "Depth-Anything-tiny"))


@pytest.fixture
def init_image(tmp_path, astronaut):
    path = tmp_path / "init.png"
    astronaut.resize((64, 64)).save(path)
    return path


@pytest.fixture
def count_calls(monkeypatch):
    """Count pipeline calls (text-to-image and image-to-image) while leaving them working."""
    calls = []
    for cls in (diffusers.StableDiffusionPipeline, diffusers.StableDiffusionImg2ImgPipeline):
        original = cls.__call__

        def counted(self, *args, _original=original, **kwargs):
            calls.append(type(self).__name__)
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(cls, "__call__", counted)
    return calls


def test_2d_at_strength_1_and_cadence_1_is_the_init_image_warped_frame_after_frame(tiny_manager, tmp_path, init_image,
                                                                                   count_calls):
    req = AnimateRequest(prompts={0: "a forest"}, num_frames=6, strength="0:(1.0)", cadence=1, color_coherence="none",
                         zoom="0:(1.05)", angle="0:(2), 5:(-3)", translation_x="0:(1.5)", translation_y="0:(-1)",
                         border="wrap", init_image=str(init_image), **FAST)
    result = animate(tiny_manager, req, paths(tmp_path))
    expected = np.asarray(Image.open(init_image).convert("RGB"))
    angles = np.linspace(2, -3, 6)
    for i, frame in enumerate(frames_of(result)):
        if i:
            rotate = np.vstack([cv2.getRotationMatrix2D((32, 32), angles[i], 1.05), [0, 0, 1]])
            matrix = (rotate @ np.array([[1, 0, 1.5], [0, 1, -1], [0, 0, 1]]))[:2].astype(np.float32)
            expected = cv2.warpAffine(expected, matrix, (64, 64), borderMode=cv2.BORDER_WRAP)
        assert np.array_equal(frame, expected), f"frame {i}"
    assert count_calls == [] and result.diffusions == 0
    info = video.video_info(result.video)
    assert (info["codec"], info["frames"]) == ("h264", 6) and info["duration"] == pytest.approx(6 / 8, abs=0.01)


@pytest.mark.parametrize("frames, cadence", [(7, 3), (6, 2)])
def test_diffusion_runs_once_per_cadence_frames(tiny_manager, tmp_path, count_calls, frames, cadence):
    updates: list[AnimateUpdate] = []
    req = AnimateRequest(prompts={0: "a forest", 4: "a desert"}, num_frames=frames, cadence=cadence,
                         strength="0:(0.5)", zoom="0:(1.03)", **FAST)
    result = animate(tiny_manager, req, paths(tmp_path), on_frame=updates.append)
    assert len(count_calls) == math.ceil(frames / cadence) == result.diffusions
    assert count_calls[0] == "StableDiffusionPipeline" and set(count_calls[1:]) == {"StableDiffusionImg2ImgPipeline"}
    assert len(result.frames) == frames and video.video_info(result.video)["frames"] == frames
    written = [u for u in updates if u.image is not None]
    assert [u.index for u in written] == list(range(1, frames + 1))
    assert written[-1].text == f"frame {frames}/{frames}, diffusion {len(count_calls)}/{len(count_calls)}"
    assert any(u.steps and "step" in u.text for u in updates)
    diffused = [u for u in updates if u.steps]  # frame 0 from noise, the rest from the warped frame kept at 0.5
    assert {u.strength for u in diffused if u.diffusion == 1} == {None}
    assert {u.strength for u in diffused if u.diffusion > 1} == {0.5}
    assert {u.num_inference_steps for u in diffused} == {FAST["num_inference_steps"]}


def test_colour_coherence_holds_frame_0s_colours_where_the_model_drifts(tiny_manager, tmp_path, init_image,
                                                                       monkeypatch):
    # Real checkpoints drift towards warm, saturated colours over long runs, while the tiny random one makes
    # noise whatever it is given: run the tiny model, then hand back the start image a little warmer.
    original = diffusers.StableDiffusionImg2ImgPipeline.__call__

    def warmer(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        shifted = np.clip(np.asarray(kwargs["image"]).astype(int) + [8, 2, -8], 0, 255).astype(np.uint8)
        out.images[0] = Image.fromarray(shifted)
        return out
    monkeypatch.setattr(diffusers.StableDiffusionImg2ImgPipeline, "__call__", warmer)
    drift = {}
    for mode in ("none", "lab"):
        req = AnimateRequest(prompts={0: "a forest"}, num_frames=16, cadence=1, strength="0:(0.5)",
                             zoom="0:(1.02)", color_coherence=mode, init_image=str(init_image),
                             **{**FAST, "num_inference_steps": 2})
        labs = [mean_lab(f) for f in frames_of(animate(tiny_manager, req, paths(tmp_path / mode)))]
        drift[mode] = [float(np.linalg.norm(lab - labs[0])) for lab in labs]
    assert max(drift["lab"]) < 2.0, drift["lab"]
    assert drift["none"][-1] > 5 * max(drift["lab"][-1], 1.0), drift["none"]


def test_stop_keeps_the_frames_and_resume_equals_an_uninterrupted_run(tiny_manager, tmp_path):
    req = AnimateRequest(prompts={0: "a forest", 3: "a desert"}, prompt_blend=2, num_frames=7, cadence=2,
                         strength="0:(0.4)", zoom="0:(1.04)", angle="0:(3)", seed_behavior="random", **FAST)
    whole = animate(tiny_manager, req, paths(tmp_path / "whole"))
    control = RunControl()

    def stop_at_frame_3(update):
        if update.index >= 3 and update.image is not None:
            control.stop()
    stopped = animate(tiny_manager, req, paths(tmp_path / "parts"), on_frame=stop_at_frame_3, control=control)
    assert stopped.interrupted and 3 <= len(stopped.frames) < 7 and stopped.video is not None
    assert any("resume from" in n for n in stopped.notes)
    resumed = resume(tiny_manager, stopped.plan)
    assert not resumed.interrupted and len(resumed.frames) == 7
    for a, b in zip(frames_of(whole), frames_of(resumed)):
        assert np.array_equal(a, b)
    settings, unused = read_settings(resumed.settings)
    assert unused == [] and settings.prompts == {0: "a forest", 3: "a desert"} and settings.cadence == 2


def write_test_video(path, count, fps=10, sound=True):
    """A small MP4 of `count` distinct frames, with a tone when `sound`."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        audio = container.add_stream("aac", rate=22050) if sound else None
        for i in range(count):
            image = np.zeros((64, 96, 3), dtype=np.uint8)
            image[:, :, 0] = 20 * i % 255
            image[:, (i * 8) % 96:, 1] = 200
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio is not None:
            samples = int(22050 * count / fps)
            tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 22050)).astype(np.float32)
            for start in range(0, samples, 1024):
                frame = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="fltp", layout="mono")
                frame.sample_rate = 22050
                for packet in audio.encode(frame):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return path


def test_video_input_gives_one_frame_per_nth_at_the_source_rate_over_n_with_its_sound(tiny_manager, tmp_path):
    import av

    source = write_test_video(tmp_path / "source.mp4", 7, fps=10)
    req = AnimateRequest(prompts={0: "a painting"}, mode="Video", video=str(source), nth=3, strength="0:(0.5)",
                         **{**FAST, "num_inference_steps": 2})
    result = animate(tiny_manager, req, paths(tmp_path / "out"))
    info = video.video_info(result.video)
    assert len(result.frames) == info["frames"] == math.ceil(7 / 3)
    assert info["fps"] == pytest.approx(10 / 3, abs=0.01) and info["width"] > info["height"] >= 64
    with av.open(str(result.video)) as container:
        assert len(container.streams.audio) == 1
    assert video.read_metadata(result.video)["mode"] == "video"


def test_a_source_that_isnt_a_video_or_is_too_long_gets_a_sentence(tiny_manager, tmp_path, monkeypatch):
    def refused(source, says):
        with pytest.raises(ValueError, match=says):
            animate(tiny_manager, AnimateRequest(mode="video", video=str(source), **FAST), paths(tmp_path / "o"))
        assert not (tmp_path / "o.json").exists()
    (tmp_path / "notes.mp4").write_text("not a video")
    refused(tmp_path / "notes.mp4", "notes.mp4 is not a video that can be read")
    clip = write_test_video(tmp_path / "clip.mp4", 5, sound=False)
    monkeypatch.setattr("engine.video.animate.video_input.MAX_SOURCE_FRAMES", 3)
    refused(clip, "clip.mp4 has more than 3 frames")
    monkeypatch.setattr("engine.video.animate.request.MAX_FRAMES", 2)
    monkeypatch.setattr("engine.video.animate.video_input.MAX_SOURCE_FRAMES", 100)
    refused(clip, "over the 2 limit; set nth to at least 3")


def test_3d_warps_with_a_tiny_depth_model_loaded_like_a_real_one(tiny_manager, tmp_path, init_image, depth_folder,
                                                                 count_calls):
    req = AnimateRequest(prompts={0: "a forest"}, mode="3D", num_frames=5, cadence=2, strength="0:(0.5)",
                         translation_z="0:(20)", rotation_3d_y="0:(2)", init_image=str(init_image),
                         depth_model=depth_folder, **FAST)
    result = animate(tiny_manager, req, paths(tmp_path))
    frames = frames_of(result)
    assert len(frames) == 5 and len(count_calls) == 3 and all(not np.array_equal(a, b) for a, b in zip(frames,
                                                                                                       frames[1:]))
    plan = json.loads(result.plan.read_text())
    assert plan["request"]["mode"] == "3d" and plan["request"]["depth_model"] == depth_folder


def test_3d_without_a_depth_model_says_how_to_get_one(tiny_manager, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("STUDIO_DEPTH_MODEL", raising=False)
    monkeypatch.setattr(tiny_manager, "weights_dir", tmp_path / "empty-weights", raising=False)
    monkeypatch.setattr("engine.video.animate.depth._hub_cached", lambda repo: False)
    with pytest.raises(ValueError, match="3D mode needs a depth model.*weights/.*use 2D mode"):
        animate(tiny_manager, AnimateRequest(mode="3d", **FAST), paths(tmp_path))
