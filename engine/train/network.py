"""The LoRA layers: injected with peft into the twin modules, read out and put back by name (for checkpoints)."""
from __future__ import annotations

import torch

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "proj_in", "proj_out", "ff.net.0.proj", "ff.net.2")
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
ADAPTER = "default"


def add_lora(model: torch.nn.Module, rank: int, alpha: float, targets: tuple[str, ...], seed: int) -> list:
    """Inject LoRA layers (Gaussian A, zero B: the model starts unchanged) and return their fp32 parameters."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=list(targets))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    trainable = []
    for name, parameter in model.named_parameters():
        if ".lora_" in name:
            parameter.data = parameter.data.float()
            parameter.requires_grad_(True)
            trainable.append(parameter)
        else:
            parameter.requires_grad_(False)
    return trainable


def lora_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA tensors by parameter name (`<module>.lora_A.default.weight`), copied to the CPU."""
    return {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters() if ".lora_" in name}


def load_lora_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Put saved LoRA tensors back, exactly; a checkpoint from another rank or target set is refused."""
    mine = {name: p for name, p in model.named_parameters() if ".lora_" in name}
    if set(mine) != set(state) or any(mine[k].shape != state[k].shape for k in state):
        raise ValueError("The checkpoint does not fit this training (another rank, model or layer set); start a "
                         "new training instead of resuming.")
    with torch.no_grad():
        for name, tensor in state.items():
            mine[name].copy_(tensor)


def module_pairs(state: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Module name -> (down, up) from `lora_state`'s names."""
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in state.items():
        module, _, rest = name.partition(".lora_")
        pairs.setdefault(module, {})[rest.split(".")[0]] = tensor
    return {module: (parts["A"], parts["B"]) for module, parts in pairs.items()}
