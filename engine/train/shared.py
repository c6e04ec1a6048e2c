"""A second UNet or text encoder over the loaded model's own tensors: LoRA layers go into it, never into the model.

This is how Keep identity runs its adapter (engine.faces.identity): the twin's parameters are new Parameter objects
around the same storage, so nothing is copied, the base tensors are never written (the optimiser only sees the
LoRA layers), and requests on the original modules see exactly the model they saw before.
"""
from __future__ import annotations

import torch


def share_module(module: torch.nn.Module) -> torch.nn.Module:
    """A module of the same class and config whose every parameter and buffer is `module`'s tensor: no copy."""
    cls = type(module)
    with torch.device("meta"):
        twin = cls.from_config(module.config) if hasattr(cls, "from_config") else cls(module.config)
    twin.load_state_dict(plain_state(module), assign=True)
    originals = dict(module.named_buffers())
    for name, buffer in list(twin.named_buffers()):
        if buffer.is_meta and name in originals:  # buffers left out of state_dict (CLIP's position_ids)
            owner, _, leaf = name.rpartition(".")
            setattr(twin.get_submodule(owner) if owner else twin, leaf, originals[name])
    left = [name for name, t in [*twin.named_parameters(), *twin.named_buffers()] if t.is_meta]
    if left:
        raise ValueError(f"The model's {cls.__name__} could not be shared for training ({left[0]} is missing).")
    return twin.requires_grad_(False)


def plain_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`module`'s tensors by their plain names, leaving out the layers of LoRAs another request has loaded into it.

    peft wraps a layer as `<layer>.base_layer` beside `<layer>.lora_A.<adapter>`; the base tensors are the model's
    own (peft never fuses here), so the twin gets the plain model whatever another job has active.
    """
    state = {}
    for name, tensor in module.state_dict().items():
        parts = name.split(".")
        if any(part.startswith("lora_") for part in parts):
            continue
        state[".".join(part for part in parts if part != "base_layer")] = tensor
    return state


def same_storage(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Whether every tensor `a` has is `b`'s tensor of that name, in the same memory."""
    theirs = {name: t.data_ptr() for name, t in [*b.named_parameters(), *b.named_buffers()]}
    return all(theirs.get(name) == t.data_ptr() for name, t in [*a.named_parameters(), *a.named_buffers()])
