"""Downloads by hub id: a pre-filled Hugging Face cache serves offline, progress is reported, no network says so fast."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine import cli
from engine.files.downloads import KINDS, Downloads, progress_class, read_parts
from engine.loaders import fewstep
from engine.loaders.lora import LoraFolder


def fake_cache(root: Path, repo_id: str, files: dict[str, bytes]) -> Path:
    """The hub cache's layout: models--org--name/snapshots/<rev>/<file> and refs/main naming the revision."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / revision
    for name, data in files.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_bytes(data)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_the_parts_file_lists_every_kind_with_recognisable_names():
    parts = read_parts()
    assert {p.kind for p in parts} == set(KINDS)
    loras = [p for p in parts if p.kind == "few-step LoRA"]
    # saved under names the Few-step picker recognises
    kinds = {fewstep.recognise(Path(local).stem).kind for p in loras for _, local in p.files}
    assert kinds == {"LCM", "TCD", "Hyper-SD"}
    hyper = sorted(fewstep.recognise(Path(p.files[0][1]).stem).num_inference_steps for p in loras
                   if p.repo_id == "ByteDance/Hyper-SD")
    assert hyper == [1, 2, 4, 8]
    lightning = [local for p in parts if p.repo_id == "ByteDance/AnimateDiff-Lightning" for _, local in p.files]
    assert lightning == [f"animatediff_lightning_{n}step_diffusers.safetensors" for n in (1, 2, 4, 8)]


def test_a_cached_lora_is_linked_into_the_lora_folder_offline_with_progress(tmp_path, offline_cache):
    data = b"lora-bytes" * 100
    fake_cache(offline_cache, "latent-consistency/lcm-lora-sdv1-5", {"pytorch_lora_weights.safetensors": data})
    downloads = Downloads(tmp_path / "weights", tmp_path / "loras")
    part = downloads.find("lcm-lora-sdv1-5")
    assert part in downloads.missing("few-step LoRA")
    seen = []
    saved = downloads.download("LCM-LoRA-SDV1-5", seen.append)
    assert saved == [tmp_path / "loras" / "lcm-lora-sdv1-5.safetensors"]
    assert saved[0].read_bytes() == data
    assert seen and seen[-1].fraction == 1.0 and seen[-1].total == len(data)
    assert downloads.present(part) and part not in downloads.missing()
    assert [f.kind for f in fewstep.find(LoraFolder(tmp_path / "loras"))] == ["LCM"]  # the picker now offers it


def test_cached_taesd_becomes_a_weights_folder_the_manager_finds(tmp_path, offline_cache):
    from engine.pipeline.tiny_vae import find_taesd

    config = b'{"_class_name": "AutoencoderTiny"}'
    fake_cache(offline_cache, "madebyollin/taesd", {"config.json": config,
                                                    "diffusion_pytorch_model.safetensors": b"weights"})
    weights = tmp_path / "weights"
    Downloads(weights).download("taesd")
    assert (weights / "taesd" / "config.json").read_bytes() == config
    assert find_taesd(weights) == str((weights / "taesd").resolve())


def test_a_missing_part_offline_gets_one_sentence_at_once(tmp_path, offline_cache):
    downloads = Downloads(tmp_path / "weights")
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"^No network: HF_HUB_OFFLINE is set .* weights/motion\.$"):
        downloads.download("animatediff-lightning-4step")
    assert time.monotonic() - start < 2
    assert not (tmp_path / "weights" / "motion").exists()  # nothing half-made


def test_an_unreachable_hub_gets_one_sentence_quickly(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://127.0.0.1")  # nothing listens on port 443 here
    start = time.monotonic()
    with pytest.raises(ValueError, match="No network: the Hugging Face hub can't be reached"):
        Downloads(tmp_path / "weights").download("taesd")
    assert time.monotonic() - start < 5


def test_the_progress_hook_counts_bytes_as_the_hub_reports_them():
    seen = []
    bar = progress_class("taesd: config.json", seen.append)(total=1000, initial=100, disable=True)
    bar.update(400)
    bar.update(500)
    assert [(p.done, p.total) for p in seen] == [(100, 1000), (500, 1000), (1000, 1000)]
    assert seen[-1].fraction == 1.0 and seen[-1].what == "taesd: config.json"


def test_unknown_names_list_the_parts():
    with pytest.raises(ValueError, match="no part called 'nope'.*lcm-lora-sdv1-5"):
        Downloads(Path("weights")).find("nope")


def test_cli_download_lists_and_fetches_from_the_cache(tmp_path, offline_cache, monkeypatch, capsys):
    fake_cache(offline_cache, "h1t/TCD-SD15-LoRA", {"pytorch_lora_weights.safetensors": b"tcd"})
    assert cli.main(["download", "--lora-dir", str(tmp_path / "loras")]) == 0
    listing = capsys.readouterr().out
    assert "TCD-SD15-LoRA (few-step LoRA, 135 MB)  available to download" in listing
    assert cli.main(["download", "TCD-SD15-LoRA", "--lora-dir", str(tmp_path / "loras")]) == 0
    out = capsys.readouterr()
    assert (tmp_path / "loras" / "TCD-SD15-LoRA.safetensors").read_bytes() == b"tcd"
    assert "100%" in out.err
    assert cli.main(["download", "animatediff-lightning-2step", "--lora-dir", str(tmp_path / "loras")]) == 2
    assert capsys.readouterr().err.startswith("error: No network")
