"""Settings files of the Deforum extension (A1111): read into a request, and written back in the same keys.

Keys this app has no use for are listed by name, never dropped silently.
"""
from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path

from engine.text.limits import EXCERPT, excerpt, listed
from engine.video.animate.request import AnimateRequest, request_to_dict

SCHEDULE_KEYS = {"zoom": "zoom", "angle": "angle", "translation_x": "translation_x",
                 "translation_y": "translation_y", "translation_z": "translation_z",
                 "rotation_3d_x": "rotation_3d_x", "rotation_3d_y": "rotation_3d_y",
                 "rotation_3d_z": "rotation_3d_z", "fov_schedule": "fov", "strength_schedule": "strength",
                 "cfg_scale_schedule": "guidance", "noise_schedule": "noise"}
MODE_NAMES = {"2d": "2D", "3d": "3D", "video": "Video Input"}
COLOR_NAMES = {"none": "None", "rgb": "Match Frame 0 RGB", "hsv": "Match Frame 0 HSV", "lab": "Match Frame 0 LAB"}
# keys read as plain values: deforum key -> (request field, type)
PLAIN_KEYS = {"max_frames": ("num_frames", int), "fps": ("fps", float), "W": ("width", int), "H": ("height", int),
              "steps": ("num_inference_steps", int), "seed": ("seed", int), "diffusion_cadence": ("cadence", int),
              "extract_nth_frame": ("nth", int), "border": ("border", str), "seed_behavior": ("seed_behavior", str),
              "sampler": ("sampler", str), "video_init_path": ("video", str), "init_image": ("init_image", str),
              "negative_prompt": ("negative_prompt", str), "animation_prompts_negative": ("negative_prompt", str),
              "prompt_blend": ("prompt_blend", int)}
NO_EFFECT = {"use_init", "batch_name", "outdir", "sd_model_name", "sd_model_hash"}  # read, but nothing to set


def _typed(key: str, value, kind):
    if kind is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError(f"In the settings file, {key} should be text; got {excerpt(value)}.")
        return str(value)
    if isinstance(value, bool) or value is None:
        raise ValueError(f"In the settings file, {key} should be a number; got {excerpt(value)}.")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"In the settings file, {key} should be a number; got {excerpt(value)}.") from None
    if not math.isfinite(number):  # JSON as Python writes it allows NaN and Infinity
        raise ValueError(f"In the settings file, {key} should be a finite number; got {excerpt(value)}.")
    if kind is int:
        if number != int(number):
            raise ValueError(f"In the settings file, {key} should be a whole number; got {excerpt(value)}.")
        return int(number)
    return number


def _prompts(value) -> dict[int, str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("In the settings file, animation_prompts should be a JSON object of frame: prompt.") \
                from None
    if not isinstance(value, dict) or not value:
        raise ValueError("In the settings file, animation_prompts should map frame numbers to prompts, "
                         "e.g. {\"0\": \"a forest\"}.")
    prompts = {}
    for key, prompt in value.items():
        try:
            frame = int(str(key).strip())
        except ValueError:
            raise ValueError(f"In the settings file, animation_prompts has the key {excerpt(key)}; keys must be frame "
                             "numbers (Deforum's expressions as keys are not supported).") from None
        if not isinstance(prompt, str):
            raise ValueError(f"In the settings file, the prompt for frame {excerpt(frame)} should be text; got "
                             f"{excerpt(prompt)}.")
        prompts[frame] = prompt
    return dict(sorted(prompts.items()))


def parse_settings(data: dict, base: AnimateRequest | None = None) -> tuple[AnimateRequest, list[str]]:
    """A request from a Deforum settings dict, on top of `base`; also the names of the keys not used."""
    if not isinstance(data, dict):
        raise ValueError("The settings file should hold one JSON object, as Deforum saves it.")
    values: dict = {}
    unused: list[str] = []
    for key, value in data.items():
        if key in SCHEDULE_KEYS:
            if not isinstance(value, str):
                raise ValueError(f"In the settings file, {key} should be a schedule such as \"0:(1.0)\"; "
                                 f"got {excerpt(value)}.")
            values[SCHEDULE_KEYS[key]] = value
        elif key in PLAIN_KEYS:
            name, kind = PLAIN_KEYS[key]
            if value is None or value == "":
                continue
            values[name] = _typed(key, value, kind)
        elif key in ("animation_prompts", "prompts"):
            values["prompts"] = _prompts(value)
        elif key == "animation_mode":
            mode = str(value).strip().lower().replace("video input", "video")
            if mode not in MODE_NAMES:
                raise ValueError(f"In the settings file, animation_mode {excerpt(value)} is not supported; use 2D, 3D or "
                                 "Video Input.")
            values["mode"] = mode
        elif key == "color_coherence":
            if not isinstance(value, str):
                raise ValueError(f"In the settings file, color_coherence should be text; got {excerpt(value)}.")
            name = value.strip().lower().replace("match frame 0", "").strip()
            if name not in COLOR_NAMES:
                unused.append(f"color_coherence ({excerpt(value)})")
                continue
            values["color_coherence"] = name
        elif key in NO_EFFECT:
            continue
        else:
            unused.append(excerpt(key) if len(key) > EXCERPT else key)
    if isinstance(values.get("border"), str):
        values["border"] = values["border"].lower()
    if "seed_behavior" in values and values["seed_behavior"].lower() not in ("iter", "fixed", "random"):
        unused.append(f"seed_behavior ({excerpt(values.pop('seed_behavior'))})")
    from dataclasses import replace

    return replace(base or AnimateRequest(), **values), unused


def read_settings(path, base: AnimateRequest | None = None) -> tuple[AnimateRequest, list[str]]:
    """Read a settings file; one sentence if it is not JSON."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise ValueError(f"The settings file {path.name} can't be read; choose a Deforum settings .txt or .json "
                         "file.") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"The settings file {path.name} is not JSON (line {exc.lineno}, column {exc.colno}); "
                         "choose the settings file Deforum saved.") from None
    return parse_settings(data, base)


def unused_note(unused: list[str]) -> str:
    if not unused:
        return ""
    return f"Not used from the settings file: {listed(unused, 20)}."


def to_settings(req: AnimateRequest) -> dict:
    """The request in Deforum's keys, so the file loads here again and in the Deforum extension."""
    data = request_to_dict(req)
    out = {"animation_mode": MODE_NAMES.get(req.mode, req.mode), "max_frames": req.num_frames, "fps": req.fps,
           "W": req.width, "H": req.height, "steps": req.num_inference_steps, "seed": req.seed,
           "seed_behavior": req.seed_behavior, "sampler": req.sampler, "diffusion_cadence": req.cadence,
           "color_coherence": COLOR_NAMES.get(req.color_coherence, req.color_coherence), "border": req.border,
           "animation_prompts": data["prompts"], "animation_prompts_negative": req.negative_prompt,
           "extract_nth_frame": req.nth, "prompt_blend": req.prompt_blend}
    for key, name in SCHEDULE_KEYS.items():
        out[key] = getattr(req, name)
    if req.video:
        out["video_init_path"] = req.video
    if req.init_image:
        out["init_image"] = req.init_image
        out["use_init"] = True
    return out


REQUEST_FIELDS = {f.name for f in fields(AnimateRequest)}
