"""Hugging Face ZeroGPU: a GPU per call sized to the job, long videos as several calls, and nothing CUDA crossing.

On ZeroGPU a `@spaces.GPU` function runs in a forked worker that holds the GPU; its arguments and results are
pickled across. So a GPU function takes and returns only plain values (PIL images, numpy arrays, paths, numbers,
dataclasses of those), a session's Stop switch crosses as a file both sides can see, and a long video is an outer
handler (no GPU) that calls a GPU function once per chunk of frames.
"""
from __future__ import annotations

import inspect
import os
import queue
import threading
from functools import wraps
from typing import Callable, Iterator

import gradio as gr

from engine.image.request import RunControl
from engine.jobs import gpu_time
from engine.jobs.gate import BUSY, Busy
from tabs.session import SessionControl, user_error, user_errors

ENV = "SPACES_ZERO_GPU"  # the variable ZeroGPU hardware sets (the spaces package reads it too)


# 1. where we run
def spaces_module():
    """The `spaces` package when installed (Hugging Face Spaces install it), else None."""
    try:
        import spaces
    except ImportError:
        return None
    return spaces


def zero_gpu() -> bool:
    """True on ZeroGPU hardware: the spaces package's own setting when it is installed, else its variable."""
    spaces = spaces_module()
    config = getattr(getattr(spaces, "config", None), "Config", None)
    if config is not None and hasattr(config, "zero_gpu"):
        return bool(config.zero_gpu)
    return os.environ.get(ENV, "").strip().lower() in ("1", "t", "true")


# 3. wrapping a function for the GPU
def on_gpu(fn: Callable, seconds: Callable[..., int] | str | None = None, inner: bool = False) -> Callable:
    """Hold a ZeroGPU GPU for each call of `fn`, asking `seconds(*args)` (the handler's own arguments); elsewhere
    `spaces.GPU` leaves the function alone, and without the package nothing is wrapped.

    `seconds` may name a tab (a key of ESTIMATES). A ZeroGPU visitor is told what was asked (gr.Info), and a
    generator handler's progress bar is started and ended here, in the server's process, since the GPU worker only
    has a copy of the session; an `inner` function (one chunk of a longer job) leaves both to its caller.
    """
    spaces = spaces_module()
    if spaces is None:
        return fn
    if isinstance(seconds, str):  # a tab's name: its estimate below
        seconds = seconds_for_task(seconds, fn)
    if seconds is None:
        wrapped = spaces.GPU(fn)
    else:
        def duration(*args, **kwargs):
            asked = int(seconds(*args, **kwargs))
            if not inner and zero_gpu():
                gr.Info(gpu_time.describe(asked))
            return asked
        wrapped = spaces.GPU(fn, duration=duration)
    if inner or not (zero_gpu() and inspect.isgeneratorfunction(fn)):
        return wrapped

    @wraps(fn)
    def tracked(*args, **kwargs):
        control = next((a for a in (*args, *kwargs.values()) if isinstance(a, SessionControl)), None)
        if control is not None:
            control.reset()
            control.begin()
        failed = True
        try:
            yield from wrapped(*args, **kwargs)
            failed = False
        finally:
            if control is not None:
                control.end(failed)
    tracked.gpu = wrapped
    return tracked


def outer(fn: Callable, chunk: Callable, task: str | None = None) -> Callable:
    """A long job's handler: on ZeroGPU it stays in the server's process and calls `chunk` (a GPU function made
    with `on_gpu(..., inner=True)`) once per chunk; elsewhere it is wrapped as a whole."""
    if zero_gpu():
        fn.gpu_chunks = chunk
        return fn
    return on_gpu(fn, task)


def by_name(fn: Callable, estimate: Callable[[dict], int]) -> Callable[..., int]:
    """A duration callable for `fn`: its arguments, bound to their names, go to `estimate(values)`."""
    signature = inspect.signature(fn)

    def seconds(*args, **kwargs) -> int:
        try:
            values = signature.bind_partial(*args, **kwargs).arguments
        except TypeError:
            return gpu_time.ZEROGPU_DEFAULT_SECONDS
        try:
            return estimate(values)
        except (TypeError, ValueError, KeyError, OSError):  # the handler itself says what is wrong, quickly
            return gpu_time.MIN_SECONDS
    return seconds


# 4. inside a GPU call: an engine job's callbacks as a stream of plain values
def pump(job: Callable, control: RunControl) -> Iterator[tuple[str, object]]:
    """Run `job(on_update, control)` in a thread; yield ("update", u) per callback, then ("result", value).

    An engine ValueError becomes gr.Error here, so its sentence survives the way back from a GPU worker.
    """
    updates: queue.Queue = queue.Queue()
    outcome: dict = {}

    def work():
        try:
            outcome["result"] = job(updates.put, control)
        except BaseException as exc:  # re-raised below, in the caller's thread
            outcome["error"] = exc
        finally:
            updates.put(None)

    threading.Thread(target=work, daemon=True).start()
    try:
        while (update := updates.get()) is not None:
            yield "update", update
    finally:
        if not outcome:  # the caller went away: stop the job
            control.stop()
    if "error" in outcome:
        with user_errors():
            raise outcome["error"]
    yield "result", outcome["result"]


# 5. outside: a long video as one GPU call per chunk
def run_chunks(chunk: Callable[..., Iterator], args: tuple, control, progress, gate, describe: Callable,
               finish: Callable[[], object], note: str | None = None) -> Iterator[tuple[object | None, object | None]]:
    """Call `chunk(*args, control)` (a GPU generator yielding `pump`'s values, its result (made, total)) until
    every frame is made, Stop is pressed or a call adds nothing; then `finish()` (no GPU) makes the video.

    Yields (preview, None) while frames come, then (None, result), like tabs.common.stream. The progress bar
    and Stop span the whole run, across the calls.
    """
    session = isinstance(control, SessionControl)
    control.reset()
    if session:
        control.begin()
    if note and zero_gpu():
        gr.Info(note)
    failed, refused = True, None
    try:
        with gate.slot():
            made = -1
            while not control.stopped:
                state = None
                try:
                    for kind, value in chunk(*args, control):
                        if kind == "result":
                            state = value
                            continue
                        fraction, text, preview = describe(value)
                        progress(fraction, desc=text)
                        if session:
                            control.update(fraction, text)
                        if preview is not None:
                            yield preview, None
                except gr.Error as exc:  # ZeroGPU refused a call (quota, queue): keep what the calls before made
                    if made <= 0:
                        raise
                    refused = str(exc.message)
                    break
                count, total = state
                if count >= total or count <= made:
                    break
                made = count
        with user_errors():
            result = finish()
        if refused and isinstance(getattr(result, "notes", None), list):
            result.notes.append(f"The next GPU call was refused ({refused}); the frames made are kept, and "
                                "Resume continues from them.")
        failed = False
    except Busy:
        raise user_error(BUSY) from None
    finally:
        if session:
            control.end(failed)
    yield None, result


# 6. outside: a training as one GPU call per few hundred steps
def train_in_chunks(chunk: Callable[..., Iterator], call, control, gate,
                    note: str | None = None) -> Iterator[tuple[str, object]]:
    """Call `chunk(call, control)` (a GPU generator yielding `pump`'s values, its result a TrainResult), then
    `chunk(call.next(done), control)` (an engine.train.chunks.ChunkCall), until the training is done, Stop is
    pressed, or a call adds no step.

    Yields ("update", TrainProgress) as the steps come and ("result", TrainResult) after each call. A call refused
    after the first (gr.Error from ZeroGPU: quota, queue) ends the run with ("refused", its sentence): the
    checkpoint and LoRA of the calls before are kept, and Resume goes on from them. Each call holds one of the
    gate's slots, waiting its turn as a training does, and other requests get it between calls.
    """
    if note and zero_gpu():
        gr.Info(note)
    done = None
    while not control.stopped:
        result = None
        try:
            with gate.slot(refuse_when_full=False):
                for kind, value in chunk(call, control):
                    if kind == "result":
                        result = value
                    yield kind, value
        except gr.Error as exc:
            if done is None:  # nothing was trained in this run: the refusal is the answer
                raise
            yield "refused", str(exc.message)
            return
        if result.stopped or result.steps_done >= result.steps or (done is not None and result.steps_done <= done):
            return
        done = result.steps_done
        call = call.next(done)


# 7. what each generating handler asks for, from its own arguments (named as the handler names them)
FACE_SIZE = 512  # the face tabs work at the model's size: 512 for SD 1.5 (the tiny model's 128 is over-asked)
ALL_FACES = 3  # faces assumed when "all faces" is on: the count is only known once the photo is read


def _int(value, default: int = 1) -> int:
    try:
        return max(int(float(value)), 0)
    except (TypeError, ValueError):
        return default


def _float(value, default: float = 1.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _image(v: dict, strength: bool = False) -> gpu_time.Work:
    side = v.get("size")
    return gpu_time.Work(images=_int(v.get("batch_count"), 1), steps=_int(v.get("num_inference_steps"), 20),
                         width=_int(v.get("width", side), 512), height=_int(v.get("height", side), 512),
                         strength=_float(v.get("strength"), 1.0) if strength else 1.0)


def _faces(v: dict, images: int) -> gpu_time.Work:
    faces = ALL_FACES if v.get("all_faces") else 1
    return gpu_time.Work(images=images * faces, steps=_int(v.get("num_inference_steps"), 25), width=FACE_SIZE,
                         height=FACE_SIZE, strength=1.0 if v.get("whole_photo") else _float(v.get("strength"), 0.55),
                         extra_seconds=gpu_time.FACE_SECONDS)


def face_work(req, images: int = 1) -> gpu_time.Work:
    """The work of `images` frames of a face tab's checked request (AgingRequest, GenderRequest)."""
    return _faces({"all_faces": req.all_faces, "whole_photo": req.whole_photo, "strength": req.strength,
                   "num_inference_steps": req.num_inference_steps}, images)


def _hires(v: dict) -> list[gpu_time.Work]:
    """Hires. fix's second pass runs exactly its steps (the base steps when 0) at the upscaled size."""
    if not v.get("hires"):
        return []
    scale = _float(v.get("hires_scale"), 2.0)
    return [gpu_time.Work(images=_int(v.get("batch_count"), 1),
                          steps=_int(v.get("hires_steps"), 0) or _int(v.get("num_inference_steps"), 20),
                          width=int(_int(v.get("width"), 512) * scale), height=int(_int(v.get("height"), 512) * scale))]


def _aging(v: dict) -> list[gpu_time.Work]:
    from engine.faces.aging import parse_ages

    ages = len(parse_ages(v.get("ages") or ""))
    frames = ages + max(ages - 1, 0) * _int(v.get("transition_frames"), 0)
    return [_faces(v, frames)]


def _plot(task: str) -> Callable[[dict], list[gpu_time.Work]]:
    def works(v: dict) -> list[gpu_time.Work]:
        from engine.image.request import ImageRequest
        from engine.xyz import plan_plot
        from tabs.xyz_common import plot_request

        side = v.get("size")
        base = ImageRequest(prompt=v.get("prompt") or "", negative_prompt=v.get("negative_prompt") or "",
                            num_inference_steps=v.get("num_inference_steps"), width=v.get("width", side),
                            height=v.get("height", side), strength=_float(v.get("strength"), 0.75),
                            guidance_scale=v.get("guidance_scale"), seed=v.get("seed"), sampler=v.get("sampler"))
        req = plot_request(base, *(v.get(n) for n in ("x_type", "x_values", "y_type", "y_values", "z_type",
                                                      "z_values", "video_axis")))
        return [gpu_time.Work(steps=c.request.num_inference_steps, width=c.request.width, height=c.request.height,
                              strength=c.request.strength if task != "txt2img" else 1.0)
                for c in plan_plot(req, task).cells]
    return works


def _walk(v: dict) -> list[gpu_time.Work]:
    frames = _int(v.get("num_frames"), 24)
    probes = frames + 1 if v.get("smooth") else 0
    return [gpu_time.Work(images=frames + probes, steps=_int(v.get("num_inference_steps"), 20),
                          width=_int(v.get("width"), 512), height=_int(v.get("height"), 512))]


def _text2video(v: dict) -> list[gpu_time.Work]:
    return [gpu_time.Work(images=_int(v.get("num_frames"), 16), steps=_int(v.get("num_inference_steps"), 20),
                          width=_int(v.get("width"), 256), height=_int(v.get("height"), 256),
                          step_factor=gpu_time.MOTION_STEP_FACTOR)]


def _animate(v: dict) -> list[gpu_time.Work]:
    frames = _int(v.get("num_frames"), 24)
    diffused = frames if str(v.get("mode", "")).lower().startswith("video") else -(-frames // max(
        _int(v.get("cadence"), 1), 1))
    return [gpu_time.Work(images=diffused, steps=_int(v.get("num_inference_steps"), 20),
                          width=_int(v.get("width"), 512), height=_int(v.get("height"), 512),
                          extra_seconds=gpu_time.FACE_SECONDS)]


ESTIMATES: dict[str, Callable[[dict], list[gpu_time.Work]]] = {
    "txt2img": lambda v: [_image(v), *_hires(v)],
    "img2img": lambda v: [_image(v, strength=True)],
    "inpaint": lambda v: [_image(v, strength=True)],
    "xyz_plot": _plot("txt2img"),
    "xyz_plot_img2img": _plot("img2img"),
    "gender_swap": lambda v: [_faces(v, _int(v.get("variants"), 2))],
    "aging": _aging,
    "latent_walk": _walk,
    "dream": _walk,
    "animate": _animate,
    "text2video": _text2video,
}


def seconds_for_task(task: str, fn: Callable) -> Callable[..., int]:
    """The duration callable of a tab's handler: its arguments to the work they make, to seconds (engine.jobs.gpu_time)."""
    works = ESTIMATES[task]

    def estimate(values: dict) -> int:
        work = works(values)
        needed = gpu_time.seconds_for(*work, maximum=10 ** 9)
        if needed > gpu_time.ZEROGPU_MAX_SECONDS and zero_gpu():
            gr.Warning(f"This job may need about {needed} s of GPU, more than the {gpu_time.ZEROGPU_MAX_SECONDS} s "
                       "ZeroGPU allows one call, and be cut off: fewer images, frames or steps, or a smaller size, "
                       "keep it within one call.")
        return min(needed, gpu_time.ZEROGPU_MAX_SECONDS)
    return by_name(fn, estimate)
