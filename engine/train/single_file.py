"""Diffusers -> original (CompVis/LDM, A1111 `.ckpt`) layout, so Full DreamBooth can write one single-file model.

diffusers ships only the original -> diffusers converters; this is the small inverse, written for the
SD 1.x family (any number of levels and layers per block). Tests check it by round trip through diffusers'
``convert_ldm_*_checkpoint`` functions and through the app's own single-file loader.
"""

from __future__ import annotations

from pathlib import Path

import torch

from engine.train.kohya import write_file

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_ENCODER_PREFIX = "cond_stage_model.transformer."

UNET_RESNET_RENAMES = [
    ("norm1.", "in_layers.0."),
    ("conv1.", "in_layers.2."),
    ("norm2.", "out_layers.0."),
    ("conv2.", "out_layers.3."),
    ("time_emb_proj.", "emb_layers.1."),
    ("conv_shortcut.", "skip_connection."),
]
VAE_RESNET_RENAMES = [("conv_shortcut.", "nin_shortcut.")]
VAE_ATTENTION_RENAMES = [
    ("group_norm.", "norm."),
    ("to_q.", "q."),
    ("to_k.", "k."),
    ("to_v.", "v."),
    ("to_out.0.", "proj_out."),
]


def unet_prefix_pairs(config) -> list[tuple[str, str, list]]:
    """(diffusers prefix, original prefix, inner renames) for every block of a UNet2DConditionModel."""
    per_level = config["layers_per_block"] + 1  # the original counts the down/upsampler as one more block
    levels = len(config["block_out_channels"])
    pairs = [
        ("time_embedding.linear_1.", "time_embed.0.", []),
        ("time_embedding.linear_2.", "time_embed.2.", []),
        ("conv_in.", "input_blocks.0.0.", []),
        ("conv_norm_out.", "out.0.", []),
        ("conv_out.", "out.2.", []),
        ("mid_block.resnets.0.", "middle_block.0.", UNET_RESNET_RENAMES),
        ("mid_block.attentions.0.", "middle_block.1.", []),
        ("mid_block.resnets.1.", "middle_block.2.", UNET_RESNET_RENAMES),
    ]
    for i, block_type in enumerate(config["down_block_types"]):
        for j in range(per_level - 1):
            index = per_level * i + j + 1
            pairs.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{index}.0.", UNET_RESNET_RENAMES))
            if "CrossAttn" in block_type:
                pairs.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{index}.1.", []))
        if i < levels - 1:
            pairs.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{per_level * (i + 1)}.0.op.", []))
    for i, block_type in enumerate(config["up_block_types"]):
        has_attention = "CrossAttn" in block_type
        for j in range(per_level):
            index = per_level * i + j
            pairs.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{index}.0.", UNET_RESNET_RENAMES))
            if has_attention:
                pairs.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{index}.1.", []))
        if i < levels - 1:
            slot = 2 if has_attention else 1
            pairs.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{per_level * i + per_level - 1}.{slot}.", []))
    return pairs


def vae_prefix_pairs(config) -> list[tuple[str, str, list]]:
    """(diffusers prefix, original prefix, inner renames) for every block of an AutoencoderKL."""
    layers = config["layers_per_block"]
    levels = len(config["block_out_channels"])
    pairs = [("quant_conv.", "quant_conv.", []), ("post_quant_conv.", "post_quant_conv.", [])]
    for part in ("encoder", "decoder"):
        pairs += [
            (f"{part}.conv_in.", f"{part}.conv_in.", []),
            (f"{part}.conv_out.", f"{part}.conv_out.", []),
            (f"{part}.conv_norm_out.", f"{part}.norm_out.", []),
            (f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1.", VAE_RESNET_RENAMES),
            (f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2.", VAE_RESNET_RENAMES),
            (f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1.", VAE_ATTENTION_RENAMES),
        ]
    for i in range(levels):
        up = levels - 1 - i  # the original numbers decoder levels from the lowest resolution up
        for j in range(layers):
            pairs.append((f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}.", VAE_RESNET_RENAMES))
        for j in range(layers + 1):
            pairs.append((f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{up}.block.{j}.", VAE_RESNET_RENAMES))
        if i < levels - 1:
            pairs.append((f"encoder.down_blocks.{i}.downsamplers.0.conv.", f"encoder.down.{i}.downsample.conv.", []))
            pairs.append((f"decoder.up_blocks.{i}.upsamplers.0.conv.", f"decoder.up.{up}.upsample.conv.", []))
    return pairs


def _rename(state_dict, pairs, prefix: str) -> dict[str, torch.Tensor]:
    """Apply the longest matching prefix pair to every key; an unmapped key is an error, not a silent drop."""
    pairs = sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)
    out = {}
    for key, tensor in state_dict.items():
        match = next((pair for pair in pairs if key.startswith(pair[0])), None)
        if match is None:
            raise KeyError(f"no original-layout name for {key}")
        new_prefix, old_prefix, inner = match[1], match[0], match[2]
        rest = key[len(old_prefix) :]
        for diffusers_name, original_name in inner:
            if rest.startswith(diffusers_name):
                rest = original_name + rest[len(diffusers_name) :]
                break
        out[prefix + new_prefix + rest] = tensor
    return out


def unet_to_original(state_dict, config) -> dict[str, torch.Tensor]:
    return _rename(state_dict, unet_prefix_pairs(config), UNET_PREFIX)


def vae_to_original(state_dict, config) -> dict[str, torch.Tensor]:
    out = _rename(state_dict, vae_prefix_pairs(config), VAE_PREFIX)
    for key, tensor in out.items():
        # the original mid-block attention uses 1x1 convolutions where diffusers uses linear layers
        if ".mid.attn_1." in key and key.endswith("weight") and tensor.ndim == 2:
            out[key] = tensor[:, :, None, None]
    return out


def text_encoder_to_original(state_dict) -> dict[str, torch.Tensor]:
    """transformers 5's CLIPTextModel has no ``text_model.`` level; the original layout does."""
    return {
        TEXT_ENCODER_PREFIX + (key if key.startswith("text_model.") else "text_model." + key): tensor
        for key, tensor in state_dict.items()
    }


def pipeline_to_original(pipe) -> dict[str, torch.Tensor]:
    """One flat original-layout state dict for a StableDiffusionPipeline, ready to save as a single file."""
    return {key: tensor.clone() for key, tensor in original_state(pipe.unet, pipe.vae, pipe.text_encoder).items()}


def original_state(unet, vae, text_encoder, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The three models as one original-layout state dict on the CPU, floats cast to `dtype` when given."""
    state_dict = {}
    state_dict.update(unet_to_original(unet.state_dict(), unet.config))
    state_dict.update(vae_to_original(vae.state_dict(), vae.config))
    state_dict.update(text_encoder_to_original(text_encoder.state_dict()))
    return {key: tensor.detach().to("cpu", dtype if dtype and tensor.is_floating_point() else tensor.dtype).contiguous()
            for key, tensor in state_dict.items()}


def save_single_file(path: Path, unet, vae, text_encoder, metadata: dict[str, str],
                     dtype: torch.dtype = torch.float16) -> Path:
    """Write an A1111-layout `.safetensors` (fp16 by default, as SD 1.5 releases ship) atomically."""
    return write_file(Path(path), original_state(unet, vae, text_encoder, dtype), metadata)
