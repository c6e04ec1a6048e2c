"""Textual-inversion embeddings (A1111's embeddings folder): a file's name used as a word in a prompt."""
from __future__ import annotations

import re
import threading
from pathlib import Path

import torch

from engine.loaders.files import names_in, read_tensors, short_hash
from engine.loaders.lora import quiet

SUFFIXES = (".safetensors", ".pt", ".bin")


def vectors_of(path: Path, width: int) -> torch.Tensor:
    """The embedding's vectors, shape (n, width), from A1111 (.pt, .safetensors) or diffusers (.bin) files."""
    data = read_tensors(path, "embedding")
    label = path.stem
    if "clip_g" in data or "clip_l" in data:
        raise ValueError(f"The embedding {label} is for SDXL (it has clip_l/clip_g vectors); use an embedding made "
                         "for SD 1.5.")
    if "string_to_param" in data and isinstance(data["string_to_param"], dict):
        params = data["string_to_param"]
        tensor = params.get("*", next(iter(params.values()), None))
    elif "emb_params" in data:
        tensor = data["emb_params"]
    else:
        tensors = [v for v in data.values() if isinstance(v, torch.Tensor)]
        tensor = tensors[0] if len(tensors) == 1 else None
    if not isinstance(tensor, torch.Tensor) or tensor.ndim not in (1, 2) or tensor.numel() == 0:
        raise ValueError(f"The file {path.name} is not a textual-inversion embedding (no string_to_param, emb_params "
                         "or single vector); LoRAs go in the Lora folder.")
    tensor = tensor.detach().reshape(-1, tensor.shape[-1]).float()
    if tensor.shape[-1] != width:
        family = {768: "SD 1.5", 1024: "SD 2"}.get(int(tensor.shape[-1]), "another model family")
        raise ValueError(f"The embedding {label} was made for {family} (vectors of width {tensor.shape[-1]}; this "
                         f"model's are {width}): use an embedding made for this model family.")
    return tensor


def token_names(name: str, count: int) -> list[str]:
    """The tokens an embedding adds, `<name> <name>_1 ...` (diffusers' multi-vector naming).

    The brackets keep them apart from the model's own words ("glow" is one), so no other prompt tokenizes
    differently once an embedding is loaded.
    """
    first = f"<{name}>"
    return [first, *(f"{first}_{i}" for i in range(1, count))]


def _word(name: str) -> re.Pattern:
    return re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", re.IGNORECASE)


class EmbeddingStore:
    """The embeddings folder, and which embeddings are loaded into the current model's text encoder.

    An embedding loads the first time a prompt uses its name, so prompts without one tokenize as before.
    """

    def __init__(self, folder: Path | None):
        self.folder = Path(folder) if folder else None
        self.loaded: dict[str, int] = {}  # name -> number of vectors
        self.lock = threading.RLock()

    def files(self) -> dict[str, Path]:
        return names_in(self.folder, SUFFIXES)

    def names(self) -> list[str]:
        return sorted(self.files(), key=str.lower)

    def used_in(self, text: str) -> list[str]:
        """The embeddings whose names appear as words in `text`."""
        if not text:
            return []
        return [name for name in self.files() if _word(name).search(text)]

    def hashes(self, *texts: str) -> dict[str, str]:
        files = self.files()
        names = dict.fromkeys(n for t in texts for n in self.used_in(t))
        return {name: short_hash(files[name], tensors_only=False) for name in names}

    def ensure(self, pipe, names: list[str]) -> bool:
        """Load these embeddings into the pipeline's tokenizer and text encoder; True if any was new."""
        new = [n for n in names if n not in self.loaded]
        if not new:
            return False
        files = self.files()
        width = pipe.text_encoder.get_input_embeddings().weight.shape[-1]
        with self.lock:
            for name in new:
                if name in self.loaded:
                    continue
                vectors = vectors_of(files[name], width)
                tokens = token_names(name, len(vectors))
                with quiet():
                    pipe.load_textual_inversion({tokens[0]: vectors.to(pipe.text_encoder.dtype)}, token=tokens[0],
                                                tokenizer=pipe.tokenizer, text_encoder=pipe.text_encoder)
                self.loaded[name] = len(vectors)
        return True

    def expand(self, text: str) -> str:
        """Each loaded embedding's word becomes its tokens, one per vector, as diffusers' `maybe_convert_prompt`."""
        for name, count in self.loaded.items():
            tokens = " ".join(token_names(name, count))
            text = _word(name).sub(lambda _m, t=tokens: t, text)
        return text

    def reset(self) -> None:
        """The model was dropped; its successor has none of them loaded."""
        with self.lock:
            self.loaded.clear()


def with_word(prompt: str, name: str) -> str:
    """The prompt with the embedding's word added, unless it is there already."""
    if _word(name).search(prompt or ""):
        return prompt
    text = (prompt or "").rstrip()
    return f"{text}, {name}" if text and not text.endswith(",") else f"{text} {name}".strip()
