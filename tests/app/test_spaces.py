"""Hugging Face Spaces and ZeroGPU, with a stand-in `spaces` package (tests/app/fake_spaces.py): every generating
handler holds a GPU, each call asks for a duration that fits the job, the model loads at start-up only on ZeroGPU,
a long walk runs as several GPU calls that add up to one uninterrupted run, and nothing CUDA crosses."""
from __future__ import annotations

import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from engine.jobs import gpu_time
from engine.video import run_folder, walk, walk_request
from tabs import walk_common
from tabs.common import on_gpu
from tabs.session import SessionControl
from tests.app import fake_spaces

GENERATING = {"txt2img", "img2img", "inpaint", "xyz_plot", "xyz_plot_img2img", "aging", "gender_swap", "dream",
              "dream_resume", "latent_walk", "latent_walk_resume", "animate", "animate_resume", "text2video",
              "make_variations", "make_variations_img2img", "text2video_resume"}
FAST_WALK = dict(prompts=["a cat", "a dog", "a red house"], seeds=[1, 2, 3], num_frames=7, num_inference_steps=3,
                 width=64, height=64, sampler="Euler", fps=8, batch_size=2)


@pytest.fixture
def spaces(monkeypatch):
    """ZeroGPU on, through the stand-in package; whatever `spaces` was before comes back after the test."""
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    walk_common.chunk_call.cache_clear()
    yield fake_spaces.install(monkeypatch)
    walk_common.chunk_call.cache_clear()


@pytest.fixture
def no_spaces(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)  # makes `import spaces` fail
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)


def tiny_demo():
    from app import build_demo
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"))
    return manager, build_demo(manager)


def handlers(demo) -> dict:
    return {f.api_name: f.fn for f in demo.fns.values() if f.api_name}


def gpu_function(fn):
    """The function that holds the GPU for an endpoint: the handler itself, or (long videos) its chunk function."""
    for candidate in (fn, getattr(fn, "gpu", None), getattr(fn, "gpu_chunks", None)):
        if candidate is not None and hasattr(candidate, "zerogpu"):
            return candidate
    return None


def wrapping_of(spaces, name: str):
    return next(w for w in spaces.wrappings if w.fn.__name__ == name)


def test_every_generating_handler_holds_a_gpu_and_asks_for_a_duration(spaces):
    from tabs.running import QUEUE_ID

    _, demo = tiny_demo()
    endpoints = handlers(demo)
    # the generating endpoints are those on the shared generation queue; choosing a model loads nothing on ZeroGPU
    queued = [f for f in demo.fns.values() if f.concurrency_id == QUEUE_ID and f.api_name != "select_model"]
    assert {f.api_name for f in queued if f.api_visibility == "public"} == GENERATING
    assert all(gpu_function(f.fn) for f in queued)  # unnamed ones too (Text to image's Enter in the prompt)
    unwrapped = sorted(name for name in GENERATING if gpu_function(endpoints[name]) is None)
    assert unwrapped == []
    for w in spaces.wrappings:
        assert callable(w.duration), f"{w.fn.__name__} asks for ZeroGPU's default 60 s"
    chunked = {name for name in GENERATING if hasattr(endpoints[name], "gpu_chunks")}
    assert {"dream", "dream_resume", "latent_walk", "latent_walk_resume", "aging", "animate",
            "animate_resume"} <= chunked
    assert not any(gpu_function(endpoints[name]) for name in ("select_model", "png_info", "xyz_plan"))


def test_durations_grow_with_steps_frames_and_batch_and_stay_within_bounds(spaces):
    tiny_demo()
    seconds = wrapping_of(spaces, "txt2img").duration

    def image(steps=40, batch=4, size=1024, **hires):
        return seconds("a cat", "", steps, 7, size, size, -1, batch, "Euler", False, False, [],
                       hires.get("hires", False), hires.get("hires_scale", 2), "Latent", hires.get("hires_steps", 0),
                       0.5, -1, 0, SessionControl())

    assert image(steps=10) < image(steps=40) < image(steps=150)
    assert image(batch=1) < image(batch=4)
    assert image(size=512) < image(size=1024)
    assert image(steps=20, batch=1, size=512) == gpu_time.MIN_SECONDS  # one ordinary image: a short ask
    assert image(steps=1, size=64) == gpu_time.MIN_SECONDS
    assert image(size=512, batch=1) < image(size=512, batch=1, hires=True) < image(size=512, batch=1, hires=True,
                                                                                   hires_scale=3)
    assert image(size=512, batch=1, hires=True, hires_steps=10) < image(size=512, batch=1, hires=True, hires_steps=30)
    with pytest.warns(UserWarning, match="more than the 300 s ZeroGPU allows one call"):
        assert image(steps=150, batch=16, size=1024) == gpu_time.ZEROGPU_MAX_SECONDS
    plot = wrapping_of(spaces, "xyz_plot").duration

    def cells(values):
        return plot("a cat", "", 40, 7, 512, 512, 1, "Euler", False, -1, 0, [], "CFG Scale", values, "Nothing", "",
                    "Nothing", "",
                    "No video", SessionControl(), None)

    assert cells("3, 7, 11") < cells("3, 5, 7, 9, 11") < cells("1-30 [30]")
    swap = wrapping_of(spaces, "swap").duration
    variants = [swap("p.png", "to woman", 0.6, n, 30, 7, -1, "Euler", None, False, 0.5, False, 0, SessionControl())
                for n in (1, 4)]
    assert variants[0] < variants[1]
    from engine.faces.aging import AgingRequest, check_aging

    aging = wrapping_of(spaces, "aging_chunk").duration
    req = check_aging(AgingRequest(ages=[20, 40, 60], num_inference_steps=40))
    assert aging(req, "p.png", "f", 1) < aging(req, "p.png", "f", 6) <= gpu_time.ZEROGPU_MAX_SECONDS
    text2video = wrapping_of(spaces, "text2video_run").duration
    clip = [text2video("a fox", "", "", frames, 8, 20, 7.5, -1, 256, 256, "DDIM", False, False, None,
                       SessionControl()) for frames in (8, 16, 32)]
    assert clip == sorted(clip) and clip[0] < clip[-1] <= gpu_time.ZEROGPU_MAX_SECONDS


def test_a_walk_chunk_asks_for_more_with_more_frames_and_steps(spaces, tiny_manager, tmp_path):
    small = walk.start(tiny_manager, walk_request.WalkRequest(**{**FAST_WALK, "width": 512, "height": 512}),
                       run_folder.RunPaths.in_folder(tmp_path / "a", "walk"))
    many_steps = walk.start(tiny_manager, walk_request.WalkRequest(**{**FAST_WALK, "width": 512, "height": 512,
                                                              "num_inference_steps": 40}),
                            run_folder.RunPaths.in_folder(tmp_path / "b", "walk"))
    asked = [walk_common.chunk_seconds(str(small), frames) for frames in (2, 8, 32)]
    assert asked == sorted(asked) and asked[0] < asked[-1]
    assert walk_common.chunk_seconds(str(small), 8) < walk_common.chunk_seconds(str(many_steps), 8)
    assert walk_common.chunk_seconds(str(many_steps), 600) == gpu_time.ZEROGPU_MAX_SECONDS
    # a call of the frames chosen per call stays near ZeroGPU's default, whatever the settings
    work, batch = walk_common.chunk_work(many_steps)
    assert walk_common.chunk_seconds(str(many_steps), gpu_time.frames_per_call(work, batch)) <= 60


def frames_in(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]


def test_a_long_walk_runs_as_several_gpu_calls_and_equals_one_uninterrupted_run(spaces, tiny_manager, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setattr(gpu_time, "frames_per_call", lambda work, batch: 2 * batch)  # 4 frames a call
    outputs = []
    control = SessionControl()
    for item in walk_common.run_new(tiny_manager, walk_request.WalkRequest(**FAST_WALK), control, lambda *a, **k: None):
        outputs.append(item)
    video, gallery, files, latest, info, plan = outputs[-1]
    chunk = wrapping_of(spaces, "walk_chunk")
    assert len(chunk.asked) == 2  # 7 frames, 4 a call
    assert all(gpu_time.MIN_SECONDS <= s <= gpu_time.ZEROGPU_MAX_SECONDS for s in chunk.asked)
    assert len(gallery) == 7 and plan == ""  # finished: nothing to resume
    previews = [item[3] for item in outputs[:-1]]
    assert len(previews) == 7  # the newest frame after each frame, across both calls
    assert control.progress.finished is not None and control.progress.fraction == 1.0

    alone = walk.latent_walk(tiny_manager, walk_request.WalkRequest(**FAST_WALK),
                             run_folder.RunPaths.in_folder(tmp_path, "walk"))
    chunked = frames_in(Path(gallery[0]).parent)
    assert len(chunked) == 7
    assert all(np.array_equal(a, b) for a, b in zip(chunked, frames_in(alone.frames[0].parent)))
    assert Path(video).read_bytes() == alone.video.read_bytes()
    assert spaces.tensors == []


def test_stop_between_chunks_keeps_the_frames_and_resume_finishes_in_chunks(spaces, tiny_manager, monkeypatch):
    monkeypatch.setattr(gpu_time, "frames_per_call", lambda work, batch: batch)  # 2 frames a call
    control = SessionControl()
    seen = []

    def progress(fraction, desc=None):
        seen.append(fraction)
        if len(seen) == 3:
            control.stop()  # the Stop button, while the second call runs

    req = walk_request.WalkRequest(**FAST_WALK)
    *_, last = walk_common.run_new(tiny_manager, req, control, progress)
    _, gallery, _, _, info, plan = last
    assert plan and len(gallery) == 4  # the second call finished its batch, no third call started
    assert len(wrapping_of(spaces, "walk_chunk").asked) == 2
    assert "Stopped after 4 of 7 frames" in info

    resumed = SessionControl()
    *_, last = walk_common.run_resume(tiny_manager, plan, resumed, lambda *a, **k: None)
    assert len(last[1]) == 7 and last[5] == ""
    assert len(wrapping_of(spaces, "walk_chunk").asked) == 4  # 2 more calls for the last 3 frames


def test_a_call_refused_for_quota_keeps_the_frames_made_and_offers_resume(spaces, tiny_manager, monkeypatch):
    monkeypatch.setattr(gpu_time, "frames_per_call", lambda work, batch: batch)  # 2 frames a call
    spaces.refuse_after = 2
    *_, last = walk_common.run_new(tiny_manager, walk_request.WalkRequest(**FAST_WALK), SessionControl(),
                                   lambda *a, **k: None)
    _, gallery, _, _, info, plan = last
    assert len(gallery) == 4 and plan
    assert "exceeded your GPU quota" in info and "Resume continues" in info
    spaces.refuse_after = None
    *_, last = walk_common.run_resume(tiny_manager, plan, SessionControl(), lambda *a, **k: None)
    assert len(last[1]) == 7 and last[5] == ""


def test_an_aging_timelapse_in_several_gpu_calls_equals_one_run(spaces, tiny_manager, astronaut, tmp_path,
                                                                 monkeypatch):
    from engine.faces.aging import AgingRequest, aging_timelapse
    from tabs import aging

    monkeypatch.setattr(gpu_time, "frames_per_call", lambda work, batch=1: 2)
    photo = tmp_path / "photo.png"
    astronaut.save(photo)
    with gr.Blocks() as blocks:
        aging.build(tiny_manager)
    handler = handlers(blocks)["aging"]
    control = SessionControl()
    *_, last = handler(str(photo), "20, 50, 80", "person", 0.6, 3, 5, 9, "Euler", 1, 4, True, None, False, 0.5,
                       False, 0, control)
    video, stills, grid, _, _, _ = last
    assert len(wrapping_of(spaces, "aging_chunk").asked) == 3  # 5 frames, 2 a call
    assert control.progress.finished is not None and not control.progress.failed

    req = AgingRequest(ages=[20, 50, 80], strength=0.6, num_inference_steps=3, guidance_scale=5, seed=9,
                       sampler="Euler", transition_frames=1, fps=4)
    alone = aging_timelapse(tiny_manager, req, str(photo), tmp_path / "alone")
    assert [Path(p).name for p, _ in stills] == [alone.still_path(a).name for a, _ in alone.keyframes]
    for (path, _), (_, image) in zip(stills, alone.keyframes):
        assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), np.asarray(image))
    assert Path(video).read_bytes() == alone.video.read_bytes()
    assert spaces.tensors == []


def test_the_model_loads_at_start_up_on_zerogpu_and_the_menu_keeps_to_it(spaces):
    import app

    args = app.parse_args(["--model", "tiny", "--device", "cpu", "--dtype", "float32", "--keep-outputs-hours", "0"])
    _, manager = app.prepare(args)
    assert manager._base is not None  # loaded in prepare itself, not in a thread
    from engine.video.motion import adapter as motion_adapter

    assert manager.base().unet in motion_adapter._loaded  # a motion adapter already here goes with it
    demo = app.build_demo(manager)
    menu = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "model-select")
    assert [c[1] for c in menu.choices] == ["tiny"]
    status = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "model-status")
    assert "ZeroGPU" in status.value


def test_elsewhere_the_model_still_loads_lazily(no_spaces, monkeypatch):
    import app
    from engine.pipeline.manager import PipelineManager

    started = []
    monkeypatch.setattr(PipelineManager, "preload", lambda self: started.append(self))
    args = app.parse_args(["--model", "tiny", "--device", "cpu", "--dtype", "float32", "--keep-outputs-hours", "0"])
    _, manager = app.prepare(args)
    assert started == [manager] and manager._base is None
    assert not getattr(manager, "pinned", False)


def test_no_handler_hands_a_torch_tensor_across(spaces, tiny_manager):
    _, demo = tiny_demo()
    txt2img = handlers(demo)["txt2img"]
    control = SessionControl()
    results = list(txt2img("a cat", "", 2, 7, 64, 64, 1, 2, "Euler", False, False, [], False, 2, "Latent", 0, 0.5,
                           -1, 0, [], control))
    assert results and results[-1][0] and len(results[-1][0]) == 2
    assert spaces.tensors == []
    # the worker had a copy of the session; the bar in the server's process was still started and ended
    assert control.progress.started is not None and control.progress.finished is not None
    assert not control.progress.failed


def test_stop_reaches_a_gpu_workers_copy_of_the_session():
    import pickle

    control = SessionControl()
    copy = pickle.loads(pickle.dumps(control))  # what a ZeroGPU worker receives
    assert not isinstance(copy, SessionControl) and not copy.stopped
    control.stop()
    assert copy.stopped
    control.reset()  # the next run starts clean
    assert not copy.stopped


def test_left_alone_without_the_spaces_package(no_spaces):
    def handler():
        return 1
    assert on_gpu(handler) is handler
    assert on_gpu(handler, "txt2img") is handler


def test_readme_carries_the_spaces_front_matter():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    front = readme.split("---")[1]
    for line in ("sdk: gradio", "app_file: app.py", "sdk_version:"):
        assert line in front


def test_served_on_zerogpu_images_and_a_chunked_walk_come_back_over_the_api(spaces, monkeypatch):
    from gradio_client import Client

    from tests.app.conftest import free_port

    monkeypatch.setattr(gpu_time, "frames_per_call", lambda work, batch: 2 * batch)
    _, demo = tiny_demo()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        gallery, _, info, _, _ = client.predict(prompt="a red apple", negative_prompt="", num_inference_steps=2,
                                                guidance_scale=7, width=64, height=64, seed=11, batch_count=2,
                                                sampler="Euler", api_name="/txt2img")
        assert len(gallery) == 2 and "11, 12" in info
        assert wrapping_of(spaces, "txt2img").asked == [gpu_time.MIN_SECONDS]
        video, frames, _, _, info, plan = client.predict(
            prompts="a cat\na dog", seeds="1, 2", negative_prompt="", num_frames=5, fps=8, num_inference_steps=2,
            guidance_scale=7, sampler="Euler", width=64, height=64, loop=False, smooth=False, batch_size=1,
            gif=False, fast=False, api_name="/latent_walk")
        assert video and len(frames) == 5 and plan == ""
        assert len(wrapping_of(spaces, "walk_chunk").asked) == 3  # 2 + 2 + 1 frames
        assert spaces.tensors == []
    finally:
        demo.close()
