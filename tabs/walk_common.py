"""What the two video tabs share: running or resuming a walk with per-frame progress, and the video outputs."""
from __future__ import annotations

import functools
import time
from dataclasses import replace
from pathlib import Path

import gradio as gr

from engine import video
from engine.files.outputs import output_root, task_dir
from engine.jobs import gpu_time
from engine.jobs.runner import run_job
from engine.video import run_folder, walk, walk_request
from tabs import gpu
from tabs.common import on_gpu, result_gallery
from tabs.running import progress_bar, stream
from tabs.session import user_error, user_errors


def describe_frame(update: walk_request.FrameUpdate):
    """Progress text for videos: frame i of N, with the newest frame as the preview."""
    phase = "Measuring the path, frame" if update.phase == "probe" else "Frame"
    return update.index / update.total, f"{phase} {update.index} of {update.total}", update.image


def length_note(num_frames, fps) -> str:
    """Shown before the run, so nobody wonders why the video is one second long."""
    try:
        return f"Video length: {video.describe_length(int(num_frames), float(fps))}."
    except (TypeError, ValueError):
        return "Video length: set frames and fps."


def new_run_paths(kind: str) -> run_folder.RunPaths:
    """A fresh folder per run under outputs/<kind>/<date>/."""
    folder = task_dir(kind) / f"{time.strftime('%H%M%S')}-{time.time_ns() % 1_000_000:06d}"
    return run_folder.RunPaths.in_folder(folder, kind)


def checked_plan(path_text: str | None) -> Path:
    """Only plans inside the app's output folder can be resumed, so no path outside it is touched."""
    if not path_text:
        raise user_error("There is no stopped run to resume; start a new one.")
    path = Path(path_text).resolve()
    if output_root() not in path.parents:
        raise user_error("Only runs in the app's output folder can be resumed.")
    if not path.exists():
        raise user_error("That run no longer exists; start a new one.")
    return path


def run(job, control, progress, gate):
    """Stream frames to the preview, then hand back every output of the finished (or stopped) walk."""
    yield from show(stream(job, control, progress, gate, describe=describe_frame))


def show(events):
    """The video outputs for a stream of (preview, None) ... (None, result)."""
    for preview, result in events:
        if result is None:
            yield gr.skip(), gr.skip(), gr.skip(), preview, gr.skip(), gr.skip()
        else:
            yield outputs(result)


def outputs(result: walk_request.WalkResult):
    """Video, frame gallery, downloads, latest frame, info and the plan to resume from."""
    gif = result.video.with_suffix(".gif") if result.video else None
    files = [str(p) for p in (result.video, gif, result.plan) if p and p.exists()]
    info = [*result.notes, f"Seeds: {', '.join(str(s) for s in result.parameters['seeds'])}"]
    if result.video is None:
        info.append("No frame was finished, so there is no video yet.")
    gallery = [str(p) for p in result.frames]
    return (str(result.video) if result.video else None, gallery, files, gallery[-1] if gallery else None,
            "\n\n".join(info), str(result.plan) if result.interrupted else "")


def video_outputs(task: str):
    """The output column every video tab shows: progress and the newest frame, then the video and its files."""
    with gr.Row(equal_height=False):
        latest = gr.Image(label="Latest frame", interactive=False, height=200, min_width=200, scale=1,
                          elem_classes=["ds-preview"], elem_id=f"{task}-preview")
        with gr.Column(scale=2):
            bar = progress_bar(task)
            info = gr.Markdown(elem_id=f"{task}-info")
    player = gr.Video(label="Video", autoplay=True, loop=True, height=360, interactive=False,
                      elem_classes=["ds-video"], elem_id=f"{task}-video")
    frames = result_gallery("Frames", columns=6, height=220, elem_id=f"{task}-frames", elem_classes=["ds-frames"])
    files = gr.File(label="Download (MP4 and its settings as JSON)", file_count="multiple", interactive=False,
                    elem_id=f"{task}-files")
    return bar, player, frames, files, latest, info


def run_new(manager, req: walk_request.WalkRequest, control, progress):
    """Check a new walk or dream, give it a fresh folder, and stream it (on ZeroGPU, in chunks)."""
    with user_errors():
        walk_request.check_walk(req)
        paths = new_run_paths(req.kind)
    if gpu.zero_gpu():
        with user_errors():
            plan = walk.start(manager, req, paths)
        yield from run_chunked(manager, plan, control, progress)
        return
    job = lambda on_frame, ctl: run_job(walk.latent_walk, manager, req, paths, on_frame, ctl)  # noqa: E731
    yield from run(job, control, progress, manager.gate)


def resume_job(manager, plan_text: str):
    """The engine call for the Resume button."""
    plan = checked_plan(plan_text)
    return lambda on_frame, ctl: run_job(walk.resume, manager, plan, on_frame, ctl)


def run_resume(manager, plan_text: str, control, progress):
    """The Resume button: continue a stopped walk or dream (on ZeroGPU, in chunks)."""
    if gpu.zero_gpu():
        yield from run_chunked(manager, checked_plan(plan_text), control, progress)
        return
    yield from run(resume_job(manager, plan_text), control, progress, manager.gate)


# ZeroGPU: a walk as one GPU call per chunk of frames, from its plan; the video is encoded after, without the GPU
def handler(manager, fn):
    """A walk tab's run or resume handler: on ZeroGPU it stays in the server's process and calls the chunk
    function (which holds the GPU) once per chunk; elsewhere it is wrapped as a whole."""
    return gpu.outer(fn, chunk_call(manager) if gpu.zero_gpu() else None)


@functools.cache
def chunk_call(manager):
    """The GPU function rendering one chunk of a planned walk; made once per manager, before any GPU call."""
    def walk_chunk(plan: str, frames: int, control):
        job = lambda on_frame, ctl: walk.render_chunk(manager, Path(plan), frames, on_frame, ctl)  # noqa: E731
        yield from gpu.pump(job, control)
    return on_gpu(walk_chunk, chunk_seconds, inner=True)


def chunk_work(plan_path) -> tuple[gpu_time.Work, int]:
    """One frame's work (a probe of smooth mode costs the same) and the batch size."""
    _, plan = walk.read_plan(Path(plan_path))
    req = walk_request.WalkRequest(**plan["request"])
    return gpu_time.Work(steps=req.num_inference_steps, width=req.width, height=req.height), req.batch_size


def chunk_seconds(plan: str, frames: int, control=None) -> int:
    """What one chunk asks ZeroGPU for: its frames, in whole batches (smooth mode's probes count as frames)."""
    work, batch = chunk_work(plan)
    return gpu_time.seconds_for(replace(work, images=-(-int(frames) // batch) * batch))


def run_chunked(manager, plan: Path, control, progress):
    """Render a planned walk in ZeroGPU calls of a few frames each, then encode it."""
    work, batch = chunk_work(plan)
    frames = gpu_time.frames_per_call(work, batch)
    note = (f"This video is made {frames} frames per GPU call; each call asks ZeroGPU for up to "
            f"{chunk_seconds(str(plan), frames)} s.")
    yield from show(gpu.run_chunks(chunk_call(manager), (str(plan), frames), control, progress, manager.gate,
                                   describe_frame, lambda: walk.finish(plan), note))
