"""Few-step mode: few-step LoRAs told by name, run with their schedulers; and the CLI's LoRA flags."""
from __future__ import annotations

import numpy as np
import pytest

from engine.cli import main
from engine.files import pnginfo
from engine.image.generate import request_from_parameters, text_to_image
from engine.image.request import ImageRequest
from engine.loaders import fewstep
from engine.loaders.lora import LoraFolder
from engine.pipeline.manager import PipelineManager, RuntimeOptions
from engine.pipeline.schedulers import a1111_fields, from_a1111_fields
from tests.engine import lora_files as lf

TINY = ["--model", "tiny", "--dtype", "float32", "--width", "64", "--height", "64"]


@pytest.mark.parametrize("name, kind, sampler, steps, cfg", [
    ("lcm-lora-sdv1-5", "LCM", "LCM", 4, 1.0),
    ("TCD-SD15-LoRA", "TCD", "TCD", 4, 1.0),
    ("Hyper-SD15-8steps-lora", "Hyper-SD", "DDIM SGM Uniform", 8, 1.0),
    ("Hyper-SD15-12steps-CFG-lora", "Hyper-SD", "DDIM SGM Uniform", 12, 5.0),
])
def test_few_step_loras_are_told_by_their_published_names(name, kind, sampler, steps, cfg):
    few = fewstep.recognise(name)
    assert (few.kind, few.sampler, few.num_inference_steps, few.guidance_scale) == (kind, sampler, steps, cfg)


@pytest.mark.parametrize("name", ["lcm-lora-sdxl", "Hyper-SDXL-4steps-lora", "hyperrealism", "eclcmx", "my_style"])
def test_other_loras_are_not_few_step(name):
    assert fewstep.recognise(name) is None


def test_choosing_a_few_step_lora_replaces_the_previous_one():
    lcm, tcd = fewstep.recognise("lcm-lora-sdv1-5"), fewstep.recognise("TCD-SD15")
    prompt = fewstep.with_tag("a cat <lora:style:0.5>", lcm)
    assert prompt == "a cat <lora:style:0.5> <lora:lcm-lora-sdv1-5:1>"
    assert fewstep.with_tag(prompt, tcd) == "a cat <lora:style:0.5> <lora:TCD-SD15:1>"


def test_sgm_uniform_reads_back_from_a1111_fields():
    assert a1111_fields("DDIM SGM Uniform") == {"Sampler": "DDIM", "Schedule type": "SGM Uniform"}
    assert from_a1111_fields("DDIM", "SGM Uniform") == "DDIM SGM Uniform"
    assert from_a1111_fields("DPM++ 2M", "karras") == "DPM++ 2M Karras"


def test_no_few_step_lora_says_what_to_get(tmp_path):
    with pytest.raises(ValueError, match="lcm-lora-sdv1-5"):
        fewstep.pick(LoraFolder(tmp_path))


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("Lora")
    pipe = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32")).base()
    for name in ("lcm-lora-sdv1-5", "TCD-SD15-LoRA", "Hyper-SD15-4steps-lora"):
        lf.write_lora(folder, name, lf.kohya_lora(pipe, seed=len(name)))
    return folder


@pytest.mark.parametrize("name", ["lcm-lora-sdv1-5", "TCD-SD15-LoRA", "Hyper-SD15-4steps-lora"])
def test_each_few_step_mode_runs_with_its_scheduler(lora_dir, name):
    manager = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"), lora_dir=lora_dir)
    few = fewstep.pick(manager.loras, name)
    req = ImageRequest(prompt=fewstep.with_tag("a cat", few), sampler=few.sampler, width=64, height=64, seed=2,
                       num_inference_steps=few.num_inference_steps, guidance_scale=few.guidance_scale)
    item = text_to_image(manager, req).images[0]
    plain = text_to_image(manager, ImageRequest(prompt="a cat", sampler=few.sampler, width=64, height=64, seed=2,
                                                num_inference_steps=4, guidance_scale=1.0)).images[0]
    assert not np.array_equal(np.asarray(item.image), np.asarray(plain.image))
    read, skipped = request_from_parameters(item.parameters)
    assert read.sampler == few.sampler and not skipped


def test_cli_few_step_and_lora_flags(lora_dir, tmp_path, capsys):
    out = tmp_path / "few.png"
    assert main(["txt2img", "--prompt", "a cat", "--few-step", "--lora-dir", str(lora_dir), "--out", str(out),
                 *TINY]) == 0
    fields = pnginfo.parse_parameters(pnginfo.read_parameters(out))
    assert fields["prompt"] == "a cat <lora:lcm-lora-sdv1-5:1>"
    assert (fields["Sampler"], fields["Steps"], fields["CFG scale"]) == ("LCM", "4", "1")
    assert fields["Lora hashes"].startswith("lcm-lora-sdv1-5: ")
    assert "Few-step mode: LCM" in capsys.readouterr().err


def test_cli_bad_lora_input_exits_2_with_one_line(lora_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STUDIO_LORA_DIR", str(lora_dir))  # the environment variable works like --lora-dir
    for prompt, words in (("a <lora:nope:1>", "No LoRA named 'nope'"), ("a <lora:TCD-SD15-LoRA:x>", "must be a number")):
        assert main(["txt2img", "--prompt", prompt, "--out", str(tmp_path / "x.png"), "--steps", "1", *TINY]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err and "Traceback" not in err
