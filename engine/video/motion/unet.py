"""A motion UNet over the model's own weights: no copy of the SD UNet, no copy of the motion adapter.

diffusers' `UNetMotionModel.from_unet2d` copies every 2D weight into a new model, which would hold the SD UNet
twice while the other tabs keep theirs. Here the motion UNet is built on the meta device (no memory) and each
of its parameters and buffers is then pointed at the very same tensor object of the SD UNet (the 2D layers) or
of the motion adapter (the temporal layers), found by name: both use the motion UNet's own names.

It is cheap (about 0.1 s for SD 1.5), so each request gets its own: state such as FreeNoise's sliding
windows lives on the request's UNet, never on a shared one.
"""
from __future__ import annotations

import torch


def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


def _point_at(target: torch.nn.Module, sources: list[dict[str, torch.Tensor]], what: str) -> None:
    """Make each of `target`'s parameters and buffers the same object as the source tensor of that name."""
    for name in [n for n, _ in target.named_parameters()] + [n for n, _ in target.named_buffers()]:
        tensor = next((s[name] for s in sources if name in s), None)
        if tensor is None:
            raise ValueError(f"The motion UNet could not share the {what}'s weights ({name} is missing); "
                             "use an SD 1.5 model with an SD 1.5 motion adapter.")
        owner_name, _, leaf = name.rpartition(".")
        owner = target.get_submodule(owner_name) if owner_name else target
        if leaf in owner._parameters:
            owner._parameters[leaf] = tensor
        else:
            owner._buffers[leaf] = tensor


def motion_unet(unet, adapter, free_noise: bool = False):
    """A `UNetMotionModel` whose 2D layers are `unet`'s tensors and whose temporal layers are `adapter`'s.

    With `free_noise`, its temporal transformer blocks are diffusers' `FreeNoiseTransformerBlock`s (same weights),
    so `AnimateDiffPipeline.enable_free_noise` only sets their window sizes instead of copying them.
    """
    from diffusers import UNetMotionModel

    # 1. the structure, on the meta device: no weights are allocated
    with torch.device("meta"):
        model = UNetMotionModel.from_unet2d(unet, adapter, load_weights=False)
        if free_noise:
            _use_free_noise_blocks(model)
    # 2. every tensor from the SD UNet or the adapter, the same objects
    _point_at(model, [_tensors(unet), _tensors(adapter)], "model")
    return model.eval().requires_grad_(False)


def _use_free_noise_blocks(model) -> None:
    """Swap the temporal transformer blocks for FreeNoise ones, built on the meta device (inside `motion_unet`)."""
    from diffusers.models.attention import BasicTransformerBlock, FreeNoiseTransformerBlock

    blocks = [*model.down_blocks, model.mid_block, *model.up_blocks]
    for block in blocks:
        for module in getattr(block, "motion_modules", []):
            for i, basic in enumerate(module.transformer_blocks):
                if not isinstance(basic, BasicTransformerBlock):
                    continue
                module.transformer_blocks[i] = FreeNoiseTransformerBlock(
                    dim=basic.dim, num_attention_heads=basic.num_attention_heads,
                    attention_head_dim=basic.attention_head_dim, dropout=basic.dropout,
                    cross_attention_dim=basic.cross_attention_dim, activation_fn=basic.activation_fn,
                    attention_bias=basic.attention_bias, only_cross_attention=basic.only_cross_attention,
                    double_self_attention=basic.double_self_attention,
                    positional_embeddings=basic.positional_embeddings,
                    num_positional_embeddings=basic.num_positional_embeddings)


def shares_weights(motion, unet, adapter) -> bool:
    """True when every tensor of `motion` is the very storage of the SD UNet's or the adapter's (for tests)."""
    known = {t.data_ptr() for t in (*unet.parameters(), *unet.buffers(), *adapter.parameters(), *adapter.buffers())}
    return all(t.data_ptr() in known for t in (*motion.parameters(), *motion.buffers()))
