"""Tiny random LoRAs (kohya and diffusers formats) and embeddings, shaped for a given model, written to disk."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file


def _linears(model, words: tuple[str, ...]):
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and any(w in name for w in words):
            yield name, module


def kohya_lora(pipe, seed: int = 0, rank: int = 4, scale: float = 0.5, text: bool = True) -> dict:
    """kohya/A1111 keys: lora_unet_<module>.lora_down/lora_up/alpha, lora_te_text_model_<module> for CLIP."""
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    parts = [("lora_unet_", pipe.unet, ("attn1", "attn2"))]
    if text:
        parts.append(("lora_te_text_model_", pipe.text_encoder, ("self_attn",)))
    for prefix, model, words in parts:
        for name, module in _linears(model, words):
            key = prefix + name.replace(".", "_")
            tensors[f"{key}.lora_down.weight"] = torch.randn(rank, module.in_features, generator=g) * scale
            tensors[f"{key}.lora_up.weight"] = torch.randn(module.out_features, rank, generator=g) * scale
            tensors[f"{key}.alpha"] = torch.tensor(float(rank))
    return tensors


def diffusers_lora(pipe, seed: int = 1, rank: int = 4, scale: float = 0.5) -> dict:
    """diffusers/peft keys: unet.<module>.lora_A.weight and lora_B.weight."""
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, module in _linears(pipe.unet, ("attn1", "attn2")):
        tensors[f"unet.{name}.lora_A.weight"] = torch.randn(rank, module.in_features, generator=g) * scale
        tensors[f"unet.{name}.lora_B.weight"] = torch.randn(module.out_features, rank, generator=g) * scale
    return tensors


def sdxl_like_lora(pipe) -> dict:
    """The shape of an SDXL LoRA: a second text encoder (lora_te2_) beside the first."""
    tensors = kohya_lora(pipe, text=True)
    tensors = {k.replace("lora_te_", "lora_te1_"): v for k, v in tensors.items()}
    tensors["lora_te2_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight"] = torch.zeros(4, 1280)
    return tensors


def wide_lora(pipe, width: int = 2048) -> dict:
    """A LoRA whose cross-attention expects a wider text embedding (another model family)."""
    tensors = kohya_lora(pipe, text=False)
    for key in list(tensors):
        if "attn2_to_k.lora_down" in key:
            tensors[key] = torch.zeros(tensors[key].shape[0], width)
    return tensors


def write_lora(folder: Path, name: str, tensors: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def write_a1111_embedding_pt(folder: Path, name: str, width: int, vectors: int = 2, seed: int = 3) -> Path:
    """A1111's .pt layout: string_to_param {'*': (n, width)} plus its bookkeeping fields."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    data = {"string_to_token": {"*": 265}, "string_to_param": {"*": torch.randn(vectors, width, generator=g)},
            "name": name, "step": 1000}
    path = folder / f"{name}.pt"
    torch.save(data, str(path))
    return path


def write_a1111_embedding_safetensors(folder: Path, name: str, width: int, vectors: int = 1, seed: int = 4) -> Path:
    """A1111's .safetensors layout: one tensor named emb_params."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    path = folder / f"{name}.safetensors"
    save_file({"emb_params": torch.randn(vectors, width, generator=g)}, str(path))
    return path


def torch_and_openvino_managers(tmp_path_factory, loras):
    """The tiny model on PyTorch and on OpenVINO over one LoRA folder that `loras(folder, on_torch)` fills.

    A generator for a module fixture: yields (on_torch, on_ov), with OpenVINO's cache in a temporary folder.
    """
    import pytest

    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    pytest.importorskip("openvino")
    folder = tmp_path_factory.mktemp("Lora")
    mp = pytest.MonkeyPatch()
    mp.setenv("STUDIO_OPENVINO_CACHE", str(tmp_path_factory.mktemp("openvino-cache")))
    on_torch = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"), lora_dir=folder)
    loras(folder, on_torch)
    on_ov = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32", backend="openvino",
                                                   openvino_background=False), lora_dir=folder)
    on_ov.base()
    yield on_torch, on_ov
    mp.undo()


def image_and_parameters(manager, prompt: str):
    """A 64-px, 2-step image's pixels (as ints) and its PNG info, seed 8."""
    import numpy as np

    from engine.image.generate import text_to_image
    from engine.image.request import ImageRequest

    req = ImageRequest(prompt=prompt, num_inference_steps=2, width=64, height=64, seed=8)
    item = text_to_image(manager, req).images[0]
    return np.asarray(item.image).astype(int), item.parameters
