"""LoRA tags and embeddings on the tiny model: applied per request, restored after, refused clearly when wrong."""
from __future__ import annotations

import re
import threading

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from engine.image.generate import text_to_image
from engine.image.request import ImageRequest
from engine.loaders.lora import split_tags, uses_in
from engine.pipeline.manager import PipelineManager, RuntimeOptions
from tests.engine import lora_files as lf


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("networks")
    maker = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32")).base()
    width = maker.text_encoder.get_input_embeddings().weight.shape[-1]
    loras, embeds = root / "Lora", root / "embeddings"
    lf.write_lora(loras, "kohya_style", lf.kohya_lora(maker, seed=0))
    lf.write_lora(loras, "peft_style", lf.diffusers_lora(maker, seed=1))
    lf.write_lora(loras, "xl_style", lf.sdxl_like_lora(maker))
    lf.write_lora(loras, "wide_style", lf.wide_lora(maker))
    (loras / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    lf.write_a1111_embedding_pt(embeds, "MyStyle", width, vectors=2)
    lf.write_a1111_embedding_safetensors(embeds, "glow", width)
    lf.write_a1111_embedding_safetensors(embeds, "xl_embed", width * 2)
    save_file({"clip_l": torch.zeros(1, 768), "clip_g": torch.zeros(1, 1280)}, str(embeds / "sdxl_neg.safetensors"))
    (embeds / "torn.pt").write_bytes(b"PK\x03\x04 not a whole file")
    return loras, embeds


@pytest.fixture(scope="module")
def manager(folders):
    loras, embeds = folders
    m = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32", concurrency=2),
                        lora_dir=loras, embeddings_dir=embeds)
    m.base()
    return m


def pixels(manager, prompt: str, seed: int = 1, negative: str = "") -> np.ndarray:
    req = ImageRequest(prompt=prompt, negative_prompt=negative, width=64, height=64, num_inference_steps=2, seed=seed)
    return np.asarray(text_to_image(manager, req).images[0].image).astype(int)


def has_lora_layers(manager) -> bool:
    base = manager.base()
    return any("lora" in name for model in (base.unet, base.text_encoder) for name, _ in model.named_modules())


# 1. the tag syntax
def test_tags_are_taken_out_of_the_text():
    text, uses = split_tags("a cat <lora:kohya_style:0.8>, red <LORA:peft_style>")
    assert text == "a cat , red"
    assert [(u.name, u.weight) for u in uses] == [("kohya_style", 0.8), ("peft_style", 1.0)]


@pytest.mark.parametrize("tag", ["<lora:x:strong>", "<lora:x:>", "<lora:x:nan>", "<lora::1>", "<lora:x:1:2>"])
def test_a_bad_tag_says_how_to_write_it(tag):
    with pytest.raises(ValueError, match=r"<lora:"):
        split_tags(f"a cat {tag}")


def test_one_lora_with_two_weights_in_a_job_is_refused():
    with pytest.raises(ValueError, match="two weights"):
        uses_in("a <lora:x:0.5>", "b <lora:x:0.7>")


def test_the_tag_never_reaches_clip(manager):
    text = manager.prompt_text("a cat <lora:kohya_style:0.7> in a hat")
    assert "lora" not in text and "<" not in text
    tokens = manager.base().tokenizer.tokenize(text)
    assert tokens == manager.base().tokenizer.tokenize("a cat in a hat")


# 2. LoRAs change the picture, for that request only
def test_a_lora_changes_pixels_and_the_plain_model_comes_back(manager):
    before = pixels(manager, "a cat")
    kohya = pixels(manager, "a cat <lora:kohya_style:1>")
    assert np.abs(kohya - before).max() > 10
    after = pixels(manager, "a cat")
    assert np.array_equal(after, before)
    assert not has_lora_layers(manager)  # no LoRA layer left to slow the plain path


def test_weight_zero_is_the_plain_model(manager):
    assert np.array_equal(pixels(manager, "a cat <lora:kohya_style:0>"), pixels(manager, "a cat"))


def test_diffusers_format_and_two_loras_at_once(manager):
    plain = pixels(manager, "a cat")
    peft = pixels(manager, "a cat <lora:peft_style:1>")
    both = pixels(manager, "a cat <lora:peft_style:1> <lora:kohya_style:1>")
    kohya = pixels(manager, "a cat <lora:kohya_style:1>")
    assert np.abs(peft - plain).max() > 10
    assert not np.array_equal(both, peft) and not np.array_equal(both, kohya)


def test_the_text_encoder_part_changes_the_embedding(manager):
    plain = manager.encode("a cat")[0]
    with_lora = manager.encode("a cat <lora:kohya_style:1>")[0]
    assert not torch.equal(plain, with_lora)
    assert torch.equal(manager.encode("a cat")[0], plain)  # cached per LoRA set, not mixed up


def test_png_info_records_the_loras_with_their_hashes(manager):
    req = ImageRequest(prompt="a cat <lora:kohya_style:0.6> glow", width=64, height=64, num_inference_steps=1, seed=3)
    text = text_to_image(manager, req).images[0].parameters
    assert "<lora:kohya_style:0.6>" in text.splitlines()[0]  # the prompt as written, as A1111 keeps it
    assert re.search(r'Lora hashes: "kohya_style: [0-9a-f]{12}"', text)
    assert re.search(r'TI hashes: "glow: [0-9a-f]{12}"', text)


# 3. embeddings
def test_an_embedding_word_expands_and_changes_the_embedding(manager):
    assert manager.prompt_text("a mystyle cat") == "a <MyStyle> <MyStyle>_1 cat"
    assert manager.prompt_text("a MyStyle cat") == "a <MyStyle> <MyStyle>_1 cat"
    plain = manager.encode("a cat")[0]
    styled = manager.encode("a MyStyle cat")[0]
    assert not torch.equal(plain, styled)
    tokens = manager.base().tokenizer.tokenize(manager.prompt_text("a MyStyle cat"))
    assert len(tokens) == 4  # a, the two vectors, cat


def test_a_prompt_without_embedding_words_is_encoded_as_before(manager):
    fresh = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"))
    manager.prompt_text("glow MyStyle")  # both loaded into this model's tokenizer
    assert torch.equal(manager.encode("a red hat, mystyles")[0], fresh.encode("a red hat, mystyles")[0])


# 4. bad input, each with a sentence
def test_an_unknown_lora_lists_the_names_that_exist(manager):
    with pytest.raises(ValueError, match=r"No LoRA named 'nope'.*kohya_style.*peft_style"):
        pixels(manager, "a cat <lora:nope:1>")


def test_an_sdxl_lora_is_refused(manager):
    with pytest.raises(ValueError, match="SDXL"):
        pixels(manager, "a cat <lora:xl_style:1>")


def test_a_lora_for_another_width_is_refused(manager):
    with pytest.raises(ValueError, match="made for SDXL.*2048"):
        pixels(manager, "a cat <lora:wide_style:1>")


def test_a_corrupt_lora_is_refused_and_the_model_still_works(manager):
    with pytest.raises(ValueError, match="broken.safetensors could not be read"):
        pixels(manager, "a cat <lora:broken:1>")
    assert np.array_equal(pixels(manager, "a cat"), pixels(manager, "a cat"))


def test_a_weight_that_is_not_a_number_is_refused(manager):
    with pytest.raises(ValueError, match="must be a number"):
        pixels(manager, "a cat <lora:kohya_style:heavy>")


def test_an_embedding_for_another_model_is_refused(manager):
    with pytest.raises(ValueError, match="xl_embed.*width"):
        manager.encode("a xl_embed cat")


def test_an_sdxl_or_damaged_embedding_is_refused(manager):
    with pytest.raises(ValueError, match="sdxl_neg is for SDXL"):
        manager.encode("a cat", "sdxl_neg")
    with pytest.raises(ValueError, match="torn.pt could not be read"):
        manager.encode("a torn cat")
    assert manager.prompt_text("a cat") == "a cat"  # the model still serves


def test_a_lora_matching_no_layer_is_refused_and_the_model_stays_plain(manager, folders):
    loras, _ = folders
    lf.write_lora(loras, "elsewhere", {"lora_unet_not_a_layer.lora_down.weight": torch.zeros(4, 32),
                                       "lora_unet_not_a_layer.lora_up.weight": torch.zeros(32, 4)})
    with pytest.raises(ValueError, match="elsewhere"):
        pixels(manager, "a cat <lora:elsewhere:1>")
    assert not has_lora_layers(manager)
    assert np.array_equal(pixels(manager, "a cat"), pixels(manager, "a cat <lora:kohya_style:0>"))


def test_a_missing_lora_folder_says_where_to_put_them(tmp_path):
    m = PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32"), lora_dir=tmp_path / "none")
    with pytest.raises(ValueError, match="--lora-dir"):
        m.encode("a <lora:any:1>")


# 5. concurrency: two requests with different LoRAs never see each other's
def test_concurrent_requests_with_different_loras_equal_their_solo_runs(manager):
    prompts = ["a cat <lora:kohya_style:1>", "a cat <lora:peft_style:0.8>", "a cat", "a cat <lora:kohya_style:1>"]
    solo = [pixels(manager, p, seed=5) for p in prompts]
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(prompts))

    def work(i, prompt):
        try:
            start.wait()
            results[i] = pixels(manager, prompt, seed=5)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, p)) for i, p in enumerate(prompts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    for i in range(len(prompts)):
        assert np.array_equal(results[i], solo[i]), prompts[i]
