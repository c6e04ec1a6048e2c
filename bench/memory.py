"""Memory: peak RSS with one pipeline against all seven tabs on the shared manager, and one pipeline per task."""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from bench.common import EXAMPLE_PHOTO, NEGATIVE, PROMPT, SAMPLER, SEED, image_request, memory, reset_peak, settle
from bench.video import walk_request


def face_box(photo) -> tuple[int, int, int, int]:
    """The largest face (OpenCV Haar cascade), or the middle third of the photo if none is found."""
    w, h = photo.size
    try:
        import cv2
        import numpy as np

        gray = cv2.cvtColor(np.asarray(photo.convert("RGB")), cv2.COLOR_RGB2GRAY)
        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        faces = cascade.detectMultiScale(gray, 1.1, 5)
        if len(faces):
            x, y, fw, fh = max(faces, key=lambda f: f[2] * f[3])
            return int(x), int(y), int(x + fw), int(y + fh)
    except Exception:
        pass
    return w // 3, h // 3, 2 * w // 3, 2 * h // 3


def face_inpaint(manager, photo, size: int, steps: int, prompt: str, count: int) -> None:
    """Aging/gender-swap stand-in: inpaint an ellipse over the face, only-masked, at the model's size."""
    from PIL import Image, ImageDraw

    from engine.image.generate import inpaint
    from engine.image.request import ImageRequest

    mask = Image.new("L", photo.size, 0)
    x0, y0, x1, y1 = face_box(photo)
    pad_x, pad_y = (x1 - x0) // 4, (y1 - y0) // 4
    ImageDraw.Draw(mask).ellipse((x0 - pad_x, y0 - pad_y, x1 + pad_x, y1 + pad_y), fill=255)
    for n in range(count):
        inpaint(manager, ImageRequest(prompt=prompt, negative_prompt=NEGATIVE, num_inference_steps=steps,
                                      width=size, height=size, seed=SEED + n, sampler=SAMPLER, strength=0.55,
                                      only_masked=True), photo, mask)


def run_all_tabs(manager, size: int, steps: int, folder: Path) -> dict:
    """txt2img, img2img, inpaint, latent walk, dream, aging and gender swap, once each; returns notes."""
    from PIL import Image, ImageDraw

    from engine.image.generate import image_to_image, inpaint, text_to_image
    from engine.video.run_folder import RunPaths
    from engine.video.walk import latent_walk
    from engine.video.walk_request import dream_request

    notes = {}
    photo = Image.open(EXAMPLE_PHOTO).convert("RGB")
    image = text_to_image(manager, image_request(size, steps)).images[0].image
    image_to_image(manager, image_request(size, steps), image)
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).rectangle((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=255)
    inpaint(manager, image_request(size, steps), image, mask)
    latent_walk(manager, walk_request(size, steps, 2, 1), RunPaths.in_folder(folder / "walk", "walk"))
    latent_walk(manager, dream_request(PROMPT, 2, seed=SEED, num_frames=2, num_inference_steps=steps, width=size,
                                       height=size, sampler=SAMPLER, fps=8),
                RunPaths.in_folder(folder / "dream", "dream"))
    try:
        from engine.faces.aging import AgingRequest, aging_timelapse

        aging_timelapse(manager, AgingRequest(ages=[20, 70], num_inference_steps=steps, transition_frames=0,
                                              seed=SEED, size=size), photo, folder / "aging")
        notes["aging"] = "engine.faces.aging.aging_timelapse, 2 ages"
    except Exception as exc:  # the module is new or its face detector is missing: same work, by hand
        face_inpaint(manager, photo, size, steps, "portrait photo of a 70 year old person", 2)
        notes["aging"] = f"engine.faces.aging failed ({type(exc).__name__}: {exc}); ran 2 inpaint calls on the face instead"
    try:
        from engine.faces.gender import GenderRequest, gender_swap

        gender_swap(manager, GenderRequest(direction="woman", num_inference_steps=steps, seed=SEED, variants=1,
                                           size=size), photo)
        notes["gender_swap"] = "engine.faces.gender.gender_swap, 1 variant"
    except Exception as exc:
        face_inpaint(manager, photo, size, steps, "portrait photo of a woman", 1)
        notes["gender_swap"] = (f"engine.faces.gender failed ({type(exc).__name__}: {exc}); "
                                "ran 1 inpaint call on the face instead")
    return notes


def text_to_image_once(manager, size: int, steps: int) -> None:
    from engine.image.generate import text_to_image

    text_to_image(manager, image_request(size, steps))


def child_naive(args) -> dict:
    """One pipeline per task, each with its own copy of the weights, as tools without a manager do."""
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline, StableDiffusionPipeline
    from PIL import Image

    from engine.pipeline.components import SD15_CONFIG_DIR, build_from_configs
    from engine.pipeline.devices import pick_dtype
    from engine.pipeline.schedulers import make_scheduler

    dtype = pick_dtype("cpu")
    first = build_from_configs(SD15_CONFIG_DIR, dtype=dtype)
    pipes = []
    for cls in (StableDiffusionPipeline, StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline):
        parts = first.components if not pipes else copy.deepcopy(first.components)
        pipe = cls(**parts, requires_safety_checker=False)
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
        pipe.scheduler = make_scheduler(SAMPLER, pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        pipes.append(pipe)
    settle()
    loaded = memory()["rss_gb"]
    reset_peak()
    image = Image.new("RGB", (args.size, args.size), (120, 90, 60))
    mask = Image.new("L", (args.size, args.size), 255)
    common = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "num_inference_steps": args.rss_steps,
              "height": args.size, "width": args.size}
    pipes[0](**common)
    pipes[1](**common, image=image)
    pipes[2](**common, image=image, mask_image=mask)
    return {"loaded_gb": loaded, "peak_gb": memory()["peak_gb"], "pipelines": len(pipes)}

