"""How many seconds of GPU a job asks Hugging Face ZeroGPU for, and how many video frames fit in one call.

ZeroGPU attaches a GPU only while a `@spaces.GPU` function runs, for the duration the call asks (60 s when it asks
nothing), and refuses a request above its maximum. Asking too little cuts a job off mid-run; asking too much is
checked against the visitor's remaining daily quota (only the time used is charged, but a long ask can be refused
outright and waits longer in the queue). So each call asks for an estimate with a margin, bounded by the maximum.

The numbers:
- `ZEROGPU_DEFAULT_SECONDS` 60: the `spaces` package's DEFAULT_SCHEDULE_DURATION (spaces 0.51.3, zero/client.py).
- `ZEROGPU_MAX_SECONDS` 300: the longest call ZeroGPU grants to a logged-in visitor, per Hugging Face staff in the
  zero-gpu-explorers forum ("5 minutes is the maximum time that can be requested at once", README discussion #7;
  "For logged in users the limit is 300s", bertjiazheng/KoolCogVideoX discussion #2). It is not in the official
  documentation and may change; anonymous visitors may be allowed less.
- `STEP_SECONDS_512` 0.04: one classifier-free-guided SD 1.5 UNet step at 512x512 in fp16. fal.ai's published
  stable-diffusion-benchmarks measured plain diffusers (torch 2.1, SDPA) at 31.2 it/s on an A100 80G, 1.60 s for a
  50-step image with its VAE decode, i.e. 0.032 s a step; ZeroGPU's slice is half an H200 (60 SMs, spaces'
  zero/configs.json), taken here as A100-class, so 0.04 s. This is an estimate, not a measurement on ZeroGPU.
- `CALL_OVERHEAD_SECONDS` 10: a call starts a worker process and moves the weights (about 2 GB for SD 1.5 in
  fp16) to the GPU before the job runs, and the text encoder, VAE and saving run inside it too. An estimate.
- `MARGIN` 1.5 on the work, so a slower slice or a busy moment does not cut the job off.
- `TRAIN_STEP_FACTOR` 6.25: one LoRA training step (batch 1) against one guided inference step at the same size.
  The operations alone give about 2-3x (a forward, a backward of about two forwards, gradient checkpointing's
  second forward, at batch 1 against guidance's batch 2); the Train tab's own ZeroGPU figure, about four steps a
  second at 512x512 (engine/train/estimate.py ZEROGPU_STEP_S_512, from the anchors' published figures), is 0.25 s
  a step, 6.25 steps of 0.04 s: the optimiser, the fp32 LoRA weights and batch 1's poor use of the GPU. Asking too
  little cuts a call off mid-chunk, so the slower figure is the one asked for. Not measured on ZeroGPU. Prior
  preservation doubles the batch, so the step; each round of samples is two guided images.
- `TRAIN_TARGET_SECONDS` 120 and `MAX_TRAIN_STEPS_PER_CALL` 500: a training's calls each ask about two minutes,
  a few hundred steps at 512x512 (280-300 by the numbers above): long enough that the call's start and the
  checkpoint's reload are a few percent, short enough that a refused or cut-off call loses little, and well
  inside the 300 s maximum even with a first call's class images.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

ZEROGPU_DEFAULT_SECONDS = 60
ZEROGPU_MAX_SECONDS = 300
MIN_SECONDS = 15  # nothing asks for less: the worker's start and the weights' move alone take a few seconds
STEP_SECONDS_512 = 0.04
DECODE_SECONDS_512 = 0.05  # one VAE decode at 512x512 (an estimate, about one and a half steps)
CALL_OVERHEAD_SECONDS = 10
MARGIN = 1.5
CHUNK_TARGET_SECONDS = ZEROGPU_DEFAULT_SECONDS  # a video's calls each ask about this much (see frames_per_call)
FACE_SECONDS = 1.0  # finding faces, cropping and pasting back, per rendered frame of a face tab (an estimate)
MOTION_STEP_FACTOR = 1.3  # an AnimateDiff step per frame against a plain step: the motion modules' extra layers
TRAIN_STEP_FACTOR = 6.25  # a LoRA training step against a guided inference step at the same size (see above)
TRAIN_TARGET_SECONDS = 120  # a training's calls each ask about this much (see train_steps_per_call)
MAX_TRAIN_STEPS_PER_CALL = 500
SAMPLES_PER_ROUND = 2  # a training's samples: its two fixed prompts (engine.train.samples.sample_prompts)


@dataclass(frozen=True)
class Work:
    """What a call renders: `images` pictures of `width` x `height`, each `steps` denoising steps.

    `strength` below 1 runs only that share of the steps (img2img, inpaint, the face tabs); `extra_seconds` is
    per-image work that is not denoising (face detection and paste-back, warps, depth).
    """

    images: int = 1
    steps: int = 20
    width: int = 512
    height: int = 512
    strength: float = 1.0
    extra_seconds: float = 0.0
    step_factor: float = 1.0  # cost of a step against a plain SD 1.5 step (text to video's motion modules)


def work_seconds(work: Work) -> float:
    """The GPU time `work` takes by the estimates above, without overhead or margin."""
    pixels = max(int(work.width), 8) * max(int(work.height), 8) / (512 * 512)
    steps = max(1, math.ceil(max(int(work.steps), 1) * min(max(float(work.strength), 0.0), 1.0)))
    per_image = steps * STEP_SECONDS_512 * pixels * work.step_factor + DECODE_SECONDS_512 * pixels
    return max(int(work.images), 0) * (per_image + max(float(work.extra_seconds), 0.0))


def seconds_for(*works: Work, maximum: int = ZEROGPU_MAX_SECONDS) -> int:
    """Seconds to ask for a call doing all of `works`: overhead plus the work with its margin, within bounds."""
    total = CALL_OVERHEAD_SECONDS + MARGIN * sum(work_seconds(w) for w in works)
    return int(min(max(math.ceil(total), MIN_SECONDS), maximum))


def frames_per_call(work_per_frame: Work, batch: int = 1, target: float = CHUNK_TARGET_SECONDS) -> int:
    """How many frames one call of a long video renders so that it asks for about `target` seconds.

    A whole number of batches (so chunked frames match an uninterrupted run's batches), at least one batch.
    """
    batch = max(int(batch), 1)
    per_frame = MARGIN * work_seconds(Work(**{**work_per_frame.__dict__, "images": 1}))
    room = max(target - CALL_OVERHEAD_SECONDS, 0.0)
    frames = int(room // per_frame) if per_frame > 0 else batch
    return max(batch, frames // batch * batch)


def train_work(steps: int, resolution: int, sample_every: int = 0, sample_steps: int = 20,
               prior_preservation: bool = False, class_images: int = 0) -> list[Work]:
    """What a call of `steps` training steps at `resolution` does: the steps (with the photos' one VAE pass), the
    samples due in it (every `sample_every` steps, and a round at the call's end), and `class_images` for prior
    preservation (made in the first call only, then cached)."""
    size = max(int(resolution), 8)
    steps = max(int(steps), 0)
    rounds = (steps // int(sample_every) if sample_every and int(sample_every) > 0 else 0) + 1
    return [Work(images=1, steps=max(steps, 1), width=size, height=size,
                 step_factor=TRAIN_STEP_FACTOR * (2 if prior_preservation else 1)),
            Work(images=rounds * SAMPLES_PER_ROUND, steps=sample_steps, width=size, height=size),
            Work(images=max(int(class_images), 0), steps=sample_steps, width=size, height=size)]


def train_seconds(steps: int, resolution: int, sample_every: int = 0, sample_steps: int = 20,
                  prior_preservation: bool = False, class_images: int = 0) -> int:
    """Seconds a call of `steps` LoRA training steps asks ZeroGPU for (arguments as `train_work`'s)."""
    return seconds_for(*train_work(steps, resolution, sample_every, sample_steps, prior_preservation, class_images))


def train_steps_per_call(resolution: int, sample_every: int = 0, sample_steps: int = 20,
                         prior_preservation: bool = False, class_images: int = 0,
                         target: float = TRAIN_TARGET_SECONDS, most: int = MAX_TRAIN_STEPS_PER_CALL) -> int:
    """How many training steps one call makes so that it asks for about `target` seconds: at least 1, at most
    `most`. The largest count whose ask (`train_seconds`, before the maximum's cap) stays within the target; a
    first call's class images lengthen its target by their own time, up to ZeroGPU's maximum."""
    if class_images:
        extra = MARGIN * work_seconds(train_work(0, resolution, 0, sample_steps, False, class_images)[-1])
        target = min(target + extra, ZEROGPU_MAX_SECONDS)

    def fits(steps: int) -> bool:
        works = train_work(steps, resolution, sample_every, sample_steps, prior_preservation, class_images)
        return seconds_for(*works, maximum=10 ** 9) <= target

    low, high = 1, max(int(most), 1)
    if fits(high):
        return high
    while low < high:  # the ask grows with the steps: the largest count that fits, or 1
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(middle) else (low, middle - 1)
    return low


def describe(seconds: int) -> str:
    """The sentence a ZeroGPU visitor sees before a call: what was asked, and that only use is charged."""
    return (f"Asking ZeroGPU for up to {seconds} s of GPU time for this job (only the time used counts against "
            "your quota).")
