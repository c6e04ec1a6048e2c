"""`<lora:NAME:WEIGHT>` tags: parsed out of prompts, their files found, checked, and loaded as peft adapters."""
from __future__ import annotations

import contextlib
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from engine.loaders.files import names_in, read_tensors, short_hash
from engine.text.limits import excerpt, listed

SUFFIXES = (".safetensors", ".pt", ".ckpt")
TAG = re.compile(r"<lora:([^>]*)>", re.IGNORECASE)
LORA_KEY = re.compile(r"lora_(down|up|A|B)\.|\.lora\.(down|up)\.|_lora\.(down|up)\.")
LYCORIS_KEY = re.compile(r"\.(hada_w1_a|lokr_w1|oft_blocks|oft_diag)")
SDXL_MARKERS = ("lora_te2_", "text_encoder_2.", "te2.", "conditioner.embedders.1")
FAMILY_WIDTHS = {768: "SD 1.5", 1024: "SD 2", 2048: "SDXL", 4096: "a large model"}
log = logging.getLogger("diffusion_studio")


@dataclass(frozen=True)
class LoraUse:
    """One LoRA asked for by a prompt, at a weight (A1111's multiplier, 1 = as trained)."""

    name: str
    weight: float


def split_tags(text: str) -> tuple[str, list[LoraUse]]:
    """The prompt without its `<lora:...>` tags (what CLIP sees), and the LoRAs they ask for."""
    uses: list[LoraUse] = []

    def take(match: re.Match) -> str:
        uses.append(parse_tag(match.group(0), match.group(1)))
        return ""

    return TAG.sub(take, text or "").strip(), uses


def parse_tag(tag: str, body: str) -> LoraUse:
    """`name` or `name:weight`; anything else is refused with the form that works."""
    parts = body.split(":")
    name = parts[0].strip()
    if not name or len(parts) > 2:
        raise ValueError(f"The tag {excerpt(tag)} is not understood; write <lora:NAME:WEIGHT>, for example "
                         "<lora:mystyle:0.8>.")
    if len(parts) == 1:
        return LoraUse(name, 1.0)
    try:
        weight = float(parts[1])
    except ValueError:
        weight = math.nan
    if not math.isfinite(weight):
        raise ValueError(f"The weight in {excerpt(tag)} must be a number, for example <lora:NAME:0.8>; "
                         f"got {excerpt(parts[1].strip())}.")
    return LoraUse(name, weight)


def uses_in(*texts: str) -> list[LoraUse]:
    """The LoRAs asked for across a job's prompts, each once; one LoRA at two weights is refused."""
    found: dict[str, LoraUse] = {}
    for text in texts:
        for use in split_tags(text)[1]:
            other = found.get(use.name)
            if other is not None and other.weight != use.weight:
                raise ValueError(f"The LoRA {excerpt(use.name)} appears with two weights ({other.weight:g} and "
                                 f"{use.weight:g}) in one job; give it one weight.")
            found[use.name] = use
    return list(found.values())


class LoraFolder:
    """The LoRA files in a folder (A1111's models/Lora), named by their file name without extension."""

    def __init__(self, folder: Path | None):
        self.folder = Path(folder) if folder else None

    def files(self) -> dict[str, Path]:
        return names_in(self.folder, SUFFIXES)

    def names(self) -> list[str]:
        return sorted(self.files(), key=str.lower)

    def path(self, name: str) -> Path:
        """The file for a tag's name (exact, else ignoring case); unknown names list what is there."""
        files = self.files()
        if name in files:
            return files[name]
        folded = {key.lower(): path for key, path in files.items()}
        if name.lower() in folded:
            return folded[name.lower()]
        log.info("No LoRA named %s in %s.", excerpt(name), self.folder)  # the folder goes to the log, not to clients
        if files:
            raise ValueError(f"No LoRA named {excerpt(name)} in the LoRA folder; the LoRAs there are: "
                             f"{listed(sorted(files, key=str.lower), 50)}.")
        raise ValueError(f"No LoRA named {excerpt(name)}: the LoRA folder has no LoRA files. Put .safetensors LoRAs "
                         "there, or point --lora-dir at your LoRA folder.")

    def hash(self, name: str) -> str:
        return short_hash(self.path(name))


def read_lora(path: Path, unet_config, text_width: int) -> dict:
    """The file's tensors, refused with a sentence when they are not a LoRA or not one for this model family."""
    tensors = read_tensors(path, "LoRA")
    label = path.stem
    keys = list(tensors)
    if any(LYCORIS_KEY.search(k) for k in keys):
        raise ValueError(f"{label} is a LyCORIS file (LoHa, LoKr or OFT); only plain LoRAs (kohya or diffusers "
                         "format) are supported.")
    if not any(LORA_KEY.search(k) for k in keys):
        raise ValueError(f"{label} holds no LoRA tensors (lora_up/lora_down or lora_A/lora_B); is it a checkpoint "
                         "or an embedding? Checkpoints go in weights/, embeddings in weights/embeddings/.")
    if any(marker in k for k in keys for marker in SDXL_MARKERS):
        raise ValueError(f"{label} is a LoRA for SDXL (it has a second text encoder); this model is an SD 1.5 "
                         "model: use a LoRA made for SD 1.5.")
    _check_width(label, tensors, ("attn2_to_k", "attn2.to_k", "attn2.processor.to_k"), unet_config.cross_attention_dim)
    _check_width(label, tensors, ("q_proj",), text_width, text=True)
    return tensors


def _check_width(label: str, tensors: dict, layers: tuple[str, ...], width: int, text: bool = False) -> None:
    """A LoRA's input width on the text path tells which model family it was made for."""
    for key, tensor in tensors.items():
        down = any(part in key for part in ("lora_down", "lora_A", "lora.down", "_lora.down"))
        if down and any(layer in key for layer in layers) and tensor.ndim == 2 and tensor.shape[1] != width:
            found = int(tensor.shape[1])
            family = FAMILY_WIDTHS.get(found, "another model family")
            where = "text encoder" if text else "cross-attention"
            raise ValueError(f"{label} was made for {family} (its {where} width is {found}; this model's is "
                             f"{width}): use a LoRA made for this model family.")


@contextlib.contextmanager
def quiet():
    """diffusers and transformers print a load report per LoRA; the app says what matters itself."""
    import warnings

    from transformers.utils import logging as hf_logging

    loggers = [logging.getLogger(n) for n in ("diffusers", "transformers", "peft")]
    levels = [lg.level for lg in loggers]
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*peft_config.*")  # several adapters at once is the point
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_adapter(pipe, tensors: dict, adapter: str, label: str) -> None:
    """Inject one LoRA into the pipeline's UNet and text encoder as peft adapter `adapter`."""
    try:
        with quiet():
            pipe.load_lora_weights(dict(tensors), adapter_name=adapter)
    except (ValueError, RuntimeError, KeyError, IndexError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{label} does not fit this model ({reason}); it may be made for another model "
                         "family (SDXL, SD 2): use a LoRA made for SD 1.5.") from None
    if not any(adapter in (getattr(m, "peft_config", None) or {}) for m in (pipe.unet, pipe.text_encoder)):
        raise ValueError(f"{label} has no layer this model has; it may be made for another model family: use a "
                         "LoRA made for SD 1.5.")


def set_weights(pipe, adapters: list[str], weights: list[float]) -> None:
    """Activate exactly these adapters at these weights, in the UNet and the text encoder alike."""
    with quiet():
        pipe.set_adapters(adapters, weights)


def unload(pipe) -> None:
    """Remove every adapter's layers, so the model is the plain one again and its steps cost what they did."""
    with quiet():
        pipe.unload_lora_weights()


def with_tag(prompt: str, name: str, weight: float) -> str:
    """The prompt with `<lora:name:weight>`: an existing tag for that LoRA gets the new weight, else one is added."""
    tag = f"<lora:{name}:{weight:g}>"
    found = [False]

    def swap(match: re.Match) -> str:
        if match.group(1).split(":")[0].strip() == name and not found[0]:
            found[0] = True
            return tag
        return match.group(0)

    text = TAG.sub(swap, prompt or "")
    return text if found[0] else f"{text.rstrip()} {tag}".strip()
