"""ControlNet model files: found in weights/ControlNet or the local HF cache, checked for the SD 1.5 family, loaded once."""
from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
import threading
from pathlib import Path

from engine.loaders.files import names_in
from engine.pipeline.models import HUB_ID, REPO_ROOT
from engine.text.limits import excerpt, listed

log = logging.getLogger(__name__)

SUFFIXES = (".safetensors", ".pth")
SD15_CONFIG = REPO_ROOT / "presets" / "controlnet_sd15"
"""lllyasviel/control_v11p_sd15_canny's config: single files load against it, with nothing from the network."""

_LABEL_HASH = re.compile(r"\s*\[[0-9a-fA-F]{6,12}\]$")


class ControlNetFolder:
    """The ControlNet models in a folder (A1111's models/ControlNet): single files and diffusers folders, by name."""

    def __init__(self, folder: Path | None):
        self.folder = Path(folder) if folder else None

    def files(self) -> dict[str, Path]:
        folders: dict[str, Path] = {}
        if self.folder is not None and self.folder.is_dir():
            for config in sorted(self.folder.rglob("config.json")):
                if _is_controlnet_config(config):
                    folders.setdefault(config.parent.name, config.parent)
        inside = set(folders.values())
        found = {name: path for name, path in names_in(self.folder, SUFFIXES).items()
                 if not inside.intersection(path.parents)}
        return {**folders, **found}

    def names(self) -> list[str]:
        return sorted(self.files(), key=str.lower)

    def source(self, name: str) -> Path | str:
        """The file or folder for a model name (PNG info's "name [hash]" too), a path, or a cached hub id."""
        name = _LABEL_HASH.sub("", str(name).strip())
        files = self.files()
        folded = {key.lower(): path for key, path in files.items()}
        if name in files or name.lower() in folded:
            return files.get(name) or folded[name.lower()]
        path = Path(name).expanduser()
        if path.suffix.lower() in SUFFIXES and path.is_file() or (path / "config.json").is_file():
            return path
        if HUB_ID.match(name) and _hub_cached(name):
            return name
        log.info("No ControlNet model named %s in %s.", excerpt(name), self.folder)
        there = f"the models there are: {listed(self.names(), 30)}" if files else "it has no models yet"
        raise ValueError(f"No ControlNet model named {excerpt(name)} in weights/ControlNet ({there}); put a "
                         ".safetensors ControlNet for SD 1.5 there, such as control_v11p_sd15_canny.safetensors.")

    def label(self, name: str) -> str:
        """A1111's "name [hash8]" for PNG info."""
        source = self.source(name)
        if isinstance(source, str):
            return source
        return f"{source.stem if source.is_file() else source.name} [{model_hash(source)}]"


def model_hash(source: Path) -> str:
    """A1111's short model hash (sha256 of 64 KiB at 1 MiB); a folder hashes its weights file."""
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in (".safetensors", ".bin"))
        if not files:
            return "00000000"
        source = files[0]
    with open(source, "rb") as f:
        f.seek(0x100000)
        return hashlib.sha256(f.read(0x10000)).hexdigest()[:8]


def _is_controlnet_config(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("_class_name") == "ControlNetModel"
    except (OSError, ValueError, AttributeError):
        return False


def _hub_cached(repo_id: str) -> bool:
    from engine.pipeline.models import hub_cached

    return hub_cached(repo_id)


def check_family(source: Path | str, cross_attention_dim: int) -> None:
    """Refuse, in one sentence, a file that is not an SD 1.5 ControlNet for this model (SDXL, a LoRA, damaged)."""
    if isinstance(source, str) or source.is_dir():
        config = _folder_config(source)
        width = config.get("cross_attention_dim")
        if config.get("addition_embed_type") or width != cross_attention_dim:
            raise ValueError(f"The ControlNet {excerpt(str(source))} is for another model family (text width "
                             f"{width}, this model's is {cross_attention_dim}, e.g. SDXL); use an SD 1.5 ControlNet.")
        return
    shapes = _tensor_shapes(source)
    keys = list(shapes)
    if any(k.startswith("lora_") or "lora_down" in k or "lora_A" in k or "lora_up" in k for k in keys):
        raise ValueError(f"{source.name} is a LoRA, not a ControlNet: put it in weights/Lora and use it with "
                         "<lora:name:1> in the prompt.")
    if any("add_embedding" in k or "label_emb" in k for k in keys):
        raise ValueError(f"{source.name} is an SDXL ControlNet; this app runs SD 1.5: use an SD 1.5 ControlNet "
                         "such as control_v11p_sd15_canny.")
    if not any("controlnet_cond_embedding" in k or "input_hint_block" in k for k in keys):
        raise ValueError(f"{source.name} is not a ControlNet model (it has no control-image input); put SD 1.5 "
                         "ControlNet files such as control_v11p_sd15_canny.safetensors in weights/ControlNet.")
    widths = {shape[1] for key, shape in shapes.items() if key.endswith("attn2.to_k.weight") and len(shape) == 2}
    if widths and widths != {cross_attention_dim}:
        raise ValueError(f"{source.name} is a ControlNet for another model family (text width {max(widths)}, this "
                         f"model's is {cross_attention_dim}, e.g. SD 2 or SDXL); use an SD 1.5 ControlNet.")


def _folder_config(source: Path | str) -> dict:
    if isinstance(source, str):
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(source, "config.json", local_files_only=True)
    else:
        path = source / "config.json"
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        raise ValueError(f"The ControlNet folder {excerpt(str(source))} has an unreadable config.json; "
                         "download it again.") from None


def _tensor_shapes(path: Path) -> dict[str, tuple]:
    """Every tensor's name and shape, from a .safetensors header or a weights-only .pth load."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
        from engine.loaders.files import read_tensors

        data = read_tensors(path, "ControlNet")
        data = data.get("state_dict", data)
        return {key: tuple(value.shape) for key, value in data.items() if hasattr(value, "shape")}
    except ValueError as exc:
        if "ControlNet file" in str(exc):
            raise
        raise ValueError(f"The ControlNet file {path.name} could not be read; it may be damaged or incomplete: "
                         "download it again.") from None
    except Exception:  # noqa: BLE001 - any reader failure means the file is unusable
        raise ValueError(f"The ControlNet file {path.name} could not be read; it may be damaged or incomplete: "
                         "download it again.") from None


def load_controlnet(source: Path | str, unet_config, dtype):
    """A ControlNetModel from a single file, a diffusers folder or a cached hub id; offline, checked first."""
    from diffusers import ControlNetModel

    check_family(source, unet_config.cross_attention_dim)
    try:
        if isinstance(source, Path) and source.is_file():
            config = _config_dir(unet_config)
            model = ControlNetModel.from_single_file(str(source), config=config, local_files_only=True,
                                                     torch_dtype=dtype)
        else:
            model = ControlNetModel.from_pretrained(str(source), local_files_only=True, torch_dtype=dtype)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - a failed load is one sentence, the detail goes to the log
        log.info("ControlNet %s failed to load: %s", source, exc)
        name = source.name if isinstance(source, Path) else source
        raise ValueError(f"The ControlNet {excerpt(str(name))} could not be loaded: it does not match an SD 1.5 "
                         "ControlNet's layout, or it is damaged; download it again.") from None
    return model.eval().requires_grad_(False)


_CONFIGS: dict[str, str] = {}
_CONFIG_LOCK = threading.Lock()


def _config_dir(unet_config) -> str:
    """presets/controlnet_sd15 for an SD 1.5 UNet; for another layout (the tiny test model) one derived from it."""
    if unet_config.cross_attention_dim == 768 and tuple(unet_config.block_out_channels) == (320, 640, 1280, 1280):
        return str(SD15_CONFIG)
    from diffusers import ControlNetModel

    key = json.dumps({k: v for k, v in dict(unet_config).items() if not k.startswith("_")}, sort_keys=True,
                     default=str)
    with _CONFIG_LOCK:
        if key not in _CONFIGS:
            folder = tempfile.mkdtemp(prefix="controlnet-config-")
            names = set(ControlNetModel.extract_init_dict(dict(unet_config))[0])
            config = {k: v for k, v in dict(unet_config).items() if k in names}
            Path(folder, "config.json").write_text(json.dumps({"_class_name": "ControlNetModel", **config},
                                                              default=list))
            _CONFIGS[key] = folder
        return _CONFIGS[key]



class ControlNetCache:
    """Loaded ControlNet models by source, each loaded once and kept (a few at most) while the base model is."""

    KEPT = 3

    def __init__(self, folder: Path | None):
        self.folder = ControlNetFolder(folder)
        self._models: dict[str, object] = {}
        self._lock = threading.Lock()

    def get(self, name: str, unet_config, dtype, device: str):
        """The model for a name, loading it the first time; the least recently used beyond KEPT is let go."""
        source = self.folder.source(name)
        key = str(source)
        with self._lock:
            if key in self._models:
                self._models[key] = self._models.pop(key)
                return self._models[key]
            model = load_controlnet(source, unet_config, dtype).to(device)
            self._models[key] = model
            while len(self._models) > self.KEPT:
                self._models.pop(next(iter(self._models)))
            return model

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
