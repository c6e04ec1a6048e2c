"""Reading LoRA and embedding files safely, and hashing them as A1111 does for PNG info."""
from __future__ import annotations

import hashlib
import pickle
import threading
import warnings
from pathlib import Path

import torch

_HASHES: dict[tuple, str] = {}
_HASH_LOCK = threading.Lock()


def names_in(folder: Path | None, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """File stem -> path for the matching files under `folder` (subfolders too), first one wins."""
    found: dict[str, Path] = {}
    if folder is None or not Path(folder).is_dir():
        return found
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.suffix.lower() in suffixes:
            found.setdefault(path.stem, path)
    return found


def read_tensors(path: Path, what: str) -> dict:
    """A .safetensors file's tensors, or a .pt/.bin file's dict (weights only, nothing executed)."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        with warnings.catch_warnings():  # torch warns about old pickle protocols, naming its own file: the
            warnings.simplefilter("ignore")  # sentence below is what the user needs
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError(f"The {what} file {path.name} can't be read as plain tensors: it is damaged, or it holds "
                         "Python objects, which are never loaded because they could run code. Use a .safetensors "
                         "version of it.") from None
    except Exception as exc:  # noqa: BLE001 - any reader failure means the file is unusable
        raise ValueError(f"The {what} file {path.name} could not be read ({type(exc).__name__}); it may be damaged "
                         "or incomplete: download it again.") from None
    if isinstance(data, torch.Tensor):
        return {"*": data}
    if not isinstance(data, dict):
        raise ValueError(f"The {what} file {path.name} holds no tensors; download it again.")
    return data


def short_hash(path: Path, tensors_only: bool = True) -> str:
    """A1111's 12-character hash: LoRAs hash a .safetensors file's tensor data ("addnet" hash), embeddings the file."""
    stat = path.stat()
    tensors_only = tensors_only and path.suffix.lower() == ".safetensors"
    key = (str(path), stat.st_size, stat.st_mtime_ns, tensors_only)
    with _HASH_LOCK:
        if key in _HASHES:
            return _HASHES[key]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        if tensors_only:
            header = int.from_bytes(f.read(8), "little")
            f.seek(8 + header)
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()[:12]
    with _HASH_LOCK:
        _HASHES[key] = value
    return value
