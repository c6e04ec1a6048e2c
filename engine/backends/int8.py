"""int8 for the OpenVINO UNet: NNCF's hybrid quantisation for diffusion models, as optimum-intel does it.

1. Every MatMul with constant weights (the linear layers, attention projections included) gets int8 weights only
   (`nncf.compress_weights`, INT8_ASYM): their activations, attention's above all, lose too much in 8 bits.
2. The rest, the convolutions, is quantised in full, weights and activations (`nncf.quantize`, transformer
   model type, SmoothQuant off), calibrated on UNet inputs recorded from a few prompts and steps of the loaded
   model itself, so the ranges are those of real denoising, not of random noise.
3. The convolutions where 8-bit activations cost the most accuracy for the least time stay in float
   (`KEEP_FLOAT`): the first and last convolution, the time embedding, the 1x1 shortcuts of the resnets, the
   down- and upsamplers, and the transformers' 1x1 projections in and out. The 3x3 resnet convolutions, where
   the time goes, stay int8.

The result is saved as IR in its own disk-cache folder (`weights_key(unet, RECIPE)`), beside the bf16 one, and is
compiled and paged like it. `--precision auto` stays bf16 until int8 has been checked on real weights.
"""
from __future__ import annotations

import logging
import time

import numpy as np
import torch

PRECISIONS = ("auto", "bf16", "int8")
CALIBRATION_PROMPTS = ("a photograph of a lighthouse on a cliff at sunset", "portrait of an old man, oil painting",
                       "a bowl of fruit on a wooden table, studio light")
CALIBRATION_STEPS = 5  # denoising steps recorded per prompt: early, middle and late noise levels all appear
FIRST_TIME_S = 600  # calibration, conversion and quantisation of SD 1.5 took 585 s on the 2-core test machine
CALIBRATION_SIDE = 32  # latent side the inputs are recorded at (256 px): the ranges carry over to other sizes
KEEP_FLOAT = (".*conv_in.*", ".*conv_out.*", ".*time_embedding.*", ".*time_proj.*", ".*conv_shortcut.*",
              ".*samplers.*", ".*proj_in.*", ".*proj_out.*")  # node-name patterns left out of full int8
RECIPE = "int8-v2"  # names the disk-cache folder: a new recipe never reuses a model quantised by an old one

log = logging.getLogger("engine.backends.int8")


def check_precision(requested: str | None) -> str:
    """The flag's value, lower-cased; ValueError for an unknown one."""
    name = (requested or "auto").strip().lower()
    if name not in PRECISIONS:
        raise ValueError(f"Unknown precision {requested!r}; use auto, bf16 or int8.")
    return name


def resolve(requested: str | None) -> str:
    """What a precision flag runs as: auto is bf16 (int8 is opt-in until checked on real weights)."""
    name = check_precision(requested)
    return "bf16" if name == "auto" else name


def import_nncf():
    """The `nncf` module, or a ValueError saying how to install it."""
    try:
        import nncf
    except ImportError:
        raise ValueError("int8 needs NNCF; run pip install 'nncf>=3.4' or use --precision bf16.") from None
    return nncf


def record_unet_inputs(components: dict, prompts=CALIBRATION_PROMPTS, steps: int = CALIBRATION_STEPS,
                       side: int = CALIBRATION_SIDE) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Run the model's own text-to-image loop on PyTorch and keep what its UNet receives at each step.

    `components` are the loaded pipeline's parts (the plain PyTorch UNet among them); each run gets its own
    scheduler and pipeline, so nothing is shared with requests running meanwhile.
    """
    import diffusers

    unet = components["unet"]
    recorded = []

    def keep(module, args, kwargs):
        sample = args[0]
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        context = args[2] if len(args) > 2 else kwargs["encoder_hidden_states"]
        t = float(timestep.flatten()[0]) if torch.is_tensor(timestep) else float(timestep)
        recorded.append((sample.detach().float().numpy().copy(), np.asarray(t, dtype=np.float32),
                         context.detach().float().numpy().copy()))

    scheduler = diffusers.EulerDiscreteScheduler.from_config(components["scheduler"].config)
    parts = {**components, "scheduler": scheduler, "safety_checker": None, "feature_extractor": None}
    pipe = diffusers.StableDiffusionPipeline(**{key: parts.get(key) for key in (
        "vae", "text_encoder", "tokenizer", "unet", "scheduler", "safety_checker", "feature_extractor")},
        requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    handle = unet.register_forward_pre_hook(keep, with_kwargs=True)
    try:
        with torch.no_grad():
            for index, prompt in enumerate(prompts):
                pipe(prompt, num_inference_steps=steps, guidance_scale=7.0, height=side * 8, width=side * 8,
                     generator=torch.Generator().manual_seed(index), output_type="latent")
    finally:
        handle.remove()
    return recorded


def weighted_matmuls(model) -> list[str]:
    """Names of the MatMuls whose second input is a constant weight (possibly behind a Convert)."""
    names = []
    for op in model.get_ops():
        if op.get_type_name() != "MatMul":
            continue
        for index in range(op.get_input_size()):
            node = op.input_value(index).get_node()
            if node.get_type_name() == "Convert":
                node = node.input_value(0).get_node()
            if node.get_type_name() == "Constant":
                names.append(op.get_friendly_name())
                break
    return names


def quantize(model, calibration: list) -> tuple[object, dict]:
    """The hybrid int8 version of an fp32 OpenVINO UNet, and how long each part took."""
    nncf = import_nncf()
    from nncf.quantization.advanced_parameters import AdvancedSmoothQuantParameters

    timings = {}
    start = time.perf_counter()
    matmuls = weighted_matmuls(model)
    compressed = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM,
                                       ignored_scope=nncf.IgnoredScope(types=["Convolution"]))
    timings["compress_s"] = time.perf_counter() - start
    start = time.perf_counter()
    dataset = nncf.Dataset([{0: sample, 1: t, 2: context} for sample, t, context in calibration])
    quantized = nncf.quantize(compressed, dataset, model_type=nncf.ModelType.TRANSFORMER,
                              ignored_scope=nncf.IgnoredScope(names=matmuls, patterns=list(KEEP_FLOAT),
                                                              validate=False),
                              subset_size=len(calibration),
                              advanced_parameters=nncf.AdvancedQuantizationParameters(
                                  smooth_quant_alphas=AdvancedSmoothQuantParameters(convolution=-1, matmul=-1)))
    timings["quantize_s"] = time.perf_counter() - start
    log.info("int8: %d linear layers with int8 weights, the 3x3 convolutions in full int8, calibrated on %d inputs "
             "(%.0f s).", len(matmuls), len(calibration), timings["compress_s"] + timings["quantize_s"])
    return quantized, timings
