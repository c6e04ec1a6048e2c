"""Few-step mode and Fast on the default back end: a random LCM-shaped LoRA and a random full-size TAESD, made
offline in a scratch weights folder, then the few-step image (4 steps, CFG 1, TAESD) through the engine's normal
path, the switch between the plain and the fused few-step model, and Fast as the app resolves it."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from bench.common import NEGATIVE, PROMPT, SEED, Clock, image_request

LORA_NAME = "lcm-lora-sdv1-5"  # the published file name, so engine.loaders.fewstep takes it for an LCM LoRA
LORA_RANK = 64  # LCM-LoRA SD 1.5's rank
LORA_SCALE = 0.05  # small random factors: the fused weights stay near the model's, nothing overflows
LORA_LAYERS = ("to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2")  # every transformer linear


def lcm_shaped_lora(unet, seed: int = 0) -> dict:
    """kohya keys (lora_unet_*) over the UNet's transformer linears, rank 64, as LCM-LoRA for SD 1.5 has them."""
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, module in unet.named_modules():
        if isinstance(module, torch.nn.Linear) and name.endswith(LORA_LAYERS):
            key = "lora_unet_" + name.replace(".", "_")
            tensors[f"{key}.lora_down.weight"] = torch.randn(LORA_RANK, module.in_features, generator=g) * LORA_SCALE
            tensors[f"{key}.lora_up.weight"] = torch.randn(module.out_features, LORA_RANK, generator=g) * LORA_SCALE
            tensors[f"{key}.alpha"] = torch.tensor(float(LORA_RANK))
    return tensors


def make_weights(folder: Path, unet) -> Path:
    """A scratch weights folder with the LoRA in Lora/ and TAESD (real config, random weights) in taesd/."""
    from diffusers import AutoencoderTiny
    from safetensors.torch import save_file

    from engine.pipeline.tiny_vae import LOCAL_FOLDER

    (folder / "Lora").mkdir(parents=True, exist_ok=True)
    tensors = lcm_shaped_lora(unet)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "Lora" / f"{LORA_NAME}.safetensors"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        AutoencoderTiny().save_pretrained(folder / LOCAL_FOLDER)  # diffusers' defaults are TAESD's config
    return folder


def fewstep_request(manager, size: int, seed: int = SEED):
    """The request Few-step mode makes (as `engine.cli.use_few_step` does): the LoRA's tag, sampler, steps and CFG,
    decoded by TAESD."""
    from engine.image.request import ImageRequest
    from engine.loaders import fewstep

    few = fewstep.pick(manager.loras)
    return ImageRequest(prompt=fewstep.with_tag(PROMPT, few), negative_prompt=NEGATIVE, width=size, height=size,
                        seed=seed, sampler=few.sampler, num_inference_steps=few.num_inference_steps,
                        guidance_scale=few.guidance_scale, fast_decode=manager.taesd_available())


def fast_request(size: int, steps: int):
    """The default request with the Fast toggle on, as the tabs send it (Fast decode left off)."""
    return dataclasses.replace(image_request(size, steps), fast=True)


def timed(manager, req) -> dict:
    """One image through the engine, with the back end its PNG info names."""
    from engine.files.pnginfo import parse_parameters
    from engine.image.generate import text_to_image

    with Clock() as clock:
        result = text_to_image(manager, req)
    fields = parse_parameters(result.images[0].parameters)
    return {"seconds": clock.wall, "cpu_seconds": clock.cpu, "backend": fields.get("Backend"),
            "steps": req.num_inference_steps, "image": result.images[0].image}


def add_fewstep_figures(out: dict, manager, size: int, steps: int, default_seconds: float, progress) -> None:
    """`fewstep_image_s`, `fewstep_over_default`, `fewstep_switch_s` and, on OpenVINO, Fast (Few-step mode there):
    its speed-up over the default image. `default_seconds` is the default 20-step image timed in the same run."""
    from engine.backends import fast_choice

    runner = manager.openvino()
    plain_1 = dataclasses.replace(image_request(size, steps), num_inference_steps=1)
    few_req = fewstep_request(manager, size)
    figures: dict = {"lora": LORA_NAME, "sampler": few_req.sampler, "steps": few_req.num_inference_steps,
                     "guidance_scale": few_req.guidance_scale, "fast_decode": few_req.fast_decode}
    # 1. first use: OpenVINO fuses the LoRA into a copy and converts it (in the background, as the app does)
    progress("few-step: first use (the fused model is converted)")
    started = time.perf_counter()
    first = timed(manager, few_req)
    if runner is not None:
        runner.wait()
    figures["first_use"] = {"seconds": first["seconds"], "backend": first["backend"],
                            "fused_ready_s": time.perf_counter() - started,
                            "convert_s": runner.timings.get("convert_s") if runner else None}
    # 2. plain -> few-step -> plain -> few-step: what a switch costs
    progress("few-step: switching between the plain and the fused model")
    sequence = []
    for req in (plain_1, few_req, plain_1, few_req):
        run = timed(manager, req)
        sequence.append({"steps": run["steps"], "seconds": run["seconds"], "backend": run["backend"]})
    figures["switch_sequence"] = sequence
    figures["fewstep_switch_s"] = runner.fewstep_switch_s() if runner else None
    # 3. the few-step image, warm
    progress("few-step: the image, warm")
    warm = timed(manager, few_req)
    figures.update(seconds=warm["seconds"], cpu_seconds=warm["cpu_seconds"], backend=warm["backend"])
    out["fewstep"] = figures
    out["fewstep_image_s"] = warm["seconds"]
    out["fewstep_over_default"] = warm["seconds"] / default_seconds
    if figures["fewstep_switch_s"] is not None:
        out["fewstep_switch_s"] = figures["fewstep_switch_s"]
    # 4. Fast, as the tabs send it: Few-step mode on OpenVINO (full VAE), feature reuse elsewhere (timed by run.py)
    if manager.backend == "openvino":
        progress("fast toggle: Few-step mode on OpenVINO")
        fast = timed(manager, fast_request(size, steps))
        out["fast"] = {"method": "Few-step mode (engine.backends.fast_choice), full VAE",
                       "offered_on_default_backend": fast_choice.offer(manager).mode is not None,
                       "seconds": fast["seconds"], "cpu_seconds": fast["cpu_seconds"], "backend": fast["backend"],
                       "speedup_vs_default": default_seconds / fast["seconds"]}
