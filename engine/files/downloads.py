"""Parts fetched by their hub ids (few-step LoRAs, TAESD, motion adapters) into weights/, with progress.

The list lives in `presets/downloads.json`. A part already in the Hugging Face cache is linked (or copied) from there,
so it works offline; otherwise the hub is tried with a short timeout, and no network is said in one sentence.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from engine.pipeline.models import hub_offline, hub_reachable
from engine.text.limits import excerpt

PARTS_FILE = Path(__file__).resolve().parents[2] / "presets" / "downloads.json"
KINDS = ("few-step LoRA", "TAESD", "motion adapter")
LORA_FOLDER = "Lora"  # in presets/downloads.json: the LoRA folder (--lora-dir when given)
REACH_TIMEOUT = 3.0  # seconds to reach the hub before giving up: no network answers at once, never a hang
log = logging.getLogger("diffusion_studio")


@dataclass(frozen=True)
class Part:
    """One part that can be downloaded, as presets/downloads.json lists it."""

    name: str  # as the Downloads menu and `python -m engine download NAME` call it
    kind: str  # one of KINDS
    repo_id: str  # the Hugging Face hub repository
    files: tuple[tuple[str, str], ...]  # (hub file, name in the target folder)
    folder: str  # under weights/; "Lora" is the LoRA folder
    size_mb: float  # download size, shown before downloading

    @property
    def label(self) -> str:
        return f"{self.name} ({self.kind}, {self.size_mb:g} MB)"


@dataclass
class Progress:
    """How far a download is: bytes of the current file so far, its size, and which file it is."""

    done: int
    total: int
    what: str

    @property
    def fraction(self) -> float:
        return min(self.done / self.total, 1.0) if self.total else 0.0


ProgressCallback = Callable[[Progress], None]


class DownloadStopped(Exception):
    """Stop was pressed during a download: the file being fetched is dropped, those finished stay."""


def read_parts(path: Path = PARTS_FILE) -> list[Part]:
    """The parts listed in the data file, checked: known kinds, files given, folders inside weights/."""
    data = json.loads(Path(path).read_text())
    parts = []
    for entry in data["parts"]:
        folder = PurePosixPath(entry["folder"])
        if entry["kind"] not in KINDS or not entry["files"] or folder.is_absolute() or ".." in folder.parts:
            raise ValueError(f"{path}: the part {entry.get('name')!r} needs a kind ({', '.join(KINDS)}), files, and a "
                             "folder inside weights/.")
        parts.append(Part(entry["name"], entry["kind"], entry["repo_id"], tuple(entry["files"].items()),
                          entry["folder"], float(entry["size_mb"])))
    return parts


class Downloads:
    """The downloadable parts and where each goes: weights/ and the LoRA folder."""

    def __init__(self, weights_dir: Path, lora_dir: Path | None = None, parts: list[Part] | None = None,
                 cache_dir: Path | None = None):
        self.weights_dir = Path(weights_dir)
        self.lora_dir = Path(lora_dir) if lora_dir else self.weights_dir / LORA_FOLDER
        self.parts = parts if parts is not None else read_parts()
        self.cache_dir = cache_dir  # None: the Hugging Face cache the environment names (HF_HUB_CACHE, HF_HOME)

    def folder(self, part: Part) -> Path:
        return self.lora_dir if part.folder == LORA_FOLDER else self.weights_dir / part.folder

    def where(self, part: Part) -> str:
        """The target folder as a visitor may see it: never a server path."""
        return "the LoRA folder" if part.folder == LORA_FOLDER else f"weights/{part.folder}"

    def present(self, part: Part) -> bool:
        return all((self.folder(part) / local).is_file() for _, local in part.files)

    def missing(self, kind: str | None = None) -> list[Part]:
        """The parts not yet in weights/, of one kind or all: what the pickers offer as available to download."""
        return [p for p in self.parts if (kind is None or p.kind == kind) and not self.present(p)]

    def find(self, name: str) -> Part:
        for part in self.parts:
            if part.name.lower() == (name or "").strip().lower():
                return part
        raise ValueError(f"There is no part called {excerpt(name)} to download; choose one of "
                         f"{', '.join(p.name for p in self.parts)}.")

    def download(self, name: str, on_progress: ProgressCallback | None = None, control=None) -> list[Path]:
        """Put the part's files in their folder: from the Hugging Face cache when there, else from the hub.

        Raises ValueError with one sentence when there is no network (HF_HUB_OFFLINE=1 or the hub out of reach),
        and DownloadStopped when `control` (a RunControl) is stopped mid-download.
        """
        part = self.find(name)
        folder = self.folder(part)

        def report(progress: Progress) -> None:
            if control is not None and control.stopped:
                raise DownloadStopped(part.name)
            if on_progress is not None:
                on_progress(progress)
        saved = []
        for hub_file, local in part.files:
            target = folder / local
            if not target.is_file():
                cached = self._cached(part.repo_id, hub_file)
                if cached is None:
                    self._check_network(part)
                folder.mkdir(parents=True, exist_ok=True)
                if cached is not None:
                    _place(cached, target)
                else:
                    self._fetch(part, hub_file, target, report)
            size = target.stat().st_size
            report(Progress(size, size, f"{part.name}: {local}"))
            saved.append(target)
        log.info("Downloads: %s is in %s.", part.name, folder)
        return saved

    # 1. where the files come from
    def _hub_cache(self) -> str | None:
        if self.cache_dir:
            return str(self.cache_dir)
        if os.environ.get("HF_HUB_CACHE"):
            return os.environ["HF_HUB_CACHE"]
        return str(Path(os.environ["HF_HOME"]) / "hub") if os.environ.get("HF_HOME") else None

    def _cached(self, repo_id: str, filename: str) -> Path | None:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, filename, cache_dir=self._hub_cache())
        return Path(found) if isinstance(found, str) else None

    def _check_network(self, part: Part) -> None:
        if hub_offline():
            raise ValueError(f"No network: HF_HUB_OFFLINE is set and {part.name} is not in the Hugging Face cache; "
                             f"download it where there is network, or copy its files into {self.where(part)}.")
        if not hub_reachable(REACH_TIMEOUT):
            raise ValueError(f"No network: the Hugging Face hub can't be reached to download {part.name} "
                             f"({part.repo_id}); try again online, or copy its files into {self.where(part)}.")

    def _fetch(self, part: Part, hub_file: str, target: Path, report: ProgressCallback) -> None:
        """Download one file beside its target and move it in whole, so a broken download leaves nothing half-done."""
        from huggingface_hub import hf_hub_download

        staging = target.parent / f".download-{uuid.uuid4().hex[:8]}"
        try:
            path = hf_hub_download(part.repo_id, hub_file, local_dir=staging, etag_timeout=REACH_TIMEOUT,
                                   cache_dir=self._hub_cache(),
                                   tqdm_class=progress_class(f"{part.name}: {target.name}", report))
            os.replace(path, target)
        except DownloadStopped:
            raise
        except OSError as exc:
            raise ValueError(f"{part.name} could not be downloaded ({str(exc).splitlines()[0][:200]}); "
                             "check the network and try again.") from exc
        except Exception as exc:  # the hub's HTTP and not-found errors
            raise ValueError(f"{part.name} could not be downloaded from {part.repo_id} "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}).") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _place(source: Path, target: Path) -> None:
    """A hard link to the cached file where the file system allows (no second copy), else a copy."""
    partial = target.with_name(f"{target.name}.part")
    partial.unlink(missing_ok=True)
    try:
        os.link(source.resolve(), partial)
    except OSError:
        shutil.copyfile(source, partial)
    os.replace(partial, target)


def progress_class(what: str, report: ProgressCallback):
    """A tqdm class for `hf_hub_download(tqdm_class=...)` that hands each step's byte count to `report`."""
    from tqdm import tqdm

    class Reporting(tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.bytes_done = int(kwargs.get("initial") or 0)
            report(Progress(self.bytes_done, int(self.total or 0), what))

        def update(self, n=1):
            self.bytes_done += int(n or 0)
            report(Progress(self.bytes_done, int(self.total or 0), what))
            return super().update(n)

    return Reporting


def for_manager(manager) -> Downloads:
    """The parts for a manager's folders: its weights/ and its LoRA folder."""
    return Downloads(manager.weights_dir, manager.loras.folder)
