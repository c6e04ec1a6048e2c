"""DreamBooth LoRA training on the tiny model: it learns, its file loads everywhere, Stop and Resume keep the work,
and other requests never see the training."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors import safe_open
from safetensors.torch import load_file

from engine.image.generate import text_to_image
from engine.image.request import ImageRequest, RunControl
from engine.train import data
from engine.train.loop import resume_lora, train_lora
from engine.train.request import TrainRequest

SIZE = 64
PROMPT = "photo of sks object"


def shapes(folder: Path, count: int = 4) -> Path:
    """The same red disc on varied plain backgrounds: a subject the tiny model can pick up in 30 steps."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        image = Image.new("RGB", (SIZE, SIZE), tuple(int(v) for v in rng.integers(0, 255, 3)))
        ImageDraw.Draw(image).ellipse((16, 16, 48, 48), fill=(230, 20, 20))
        image.save(folder / f"shape{i}.png")
    return folder


def request(folder: Path, name: str = "sks", **changes) -> TrainRequest:
    settings = dict(class_word="object", steps=30, rank=4, alpha=4, resolution=SIZE, unet_lr=1e-2,
                    sample_every=0, sample_steps=4, overwrite=True)
    return TrainRequest(str(folder), name, **{**settings, **changes})


@pytest.fixture(scope="module")
def manager(tmp_path_factory):
    from engine.pipeline.manager import PipelineManager, RuntimeOptions

    lora_dir = tmp_path_factory.mktemp("Lora")
    return PipelineManager("tiny", RuntimeOptions(device="cpu", dtype="float32", backend="torch"), lora_dir=lora_dir)


@pytest.fixture(scope="module")
def trained(manager, tmp_path_factory):
    folder = shapes(tmp_path_factory.mktemp("shapes"))
    seen = []
    result = train_lora(manager, request(folder, sample_every=15), on_progress=seen.append,
                        root=tmp_path_factory.mktemp("runs"))
    return result, seen, folder


def fixed_loss(manager, unet, prompt: str, folder: Path) -> float:
    """The denoising loss on the training photos at fixed noises and timesteps: no sampling noise in the figure."""
    from diffusers import DDPMScheduler

    base = manager.base()
    latents = data.encode_latents(base.vae, [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.png"))])
    noise = torch.randn((8, *latents.shape), generator=torch.Generator().manual_seed(5))
    scheduler = DDPMScheduler.from_config(base.scheduler.config)
    embeds = manager.encode(prompt)[0].expand(len(latents), -1, -1)
    total = 0.0
    with torch.no_grad():
        for k, t in enumerate(torch.linspace(50, 950, 8).long()):
            steps = t.repeat(len(latents))
            predicted = unet(scheduler.add_noise(latents, noise[k], steps), steps, encoder_hidden_states=embeds).sample
            total += float(((predicted - noise[k]) ** 2).mean())
    return total / 8


def image(manager, prompt: str, seed: int = 7) -> np.ndarray:
    req = ImageRequest(prompt=prompt, num_inference_steps=6, guidance_scale=5.0, width=SIZE, height=SIZE, seed=seed)
    return np.asarray(text_to_image(manager, req).images[0].image, dtype=np.float32)


# learning
def test_the_tiny_model_learns_the_subject(manager, trained):
    result, seen, folder = trained
    assert result.steps_done == 30 and not result.stopped
    assert np.mean(result.losses[-10:]) < np.mean(result.losses[:10])
    before = fixed_loss(manager, manager.base().unet, PROMPT, folder)
    with manager.lora_scope(f"<lora:sks:1> {PROMPT}"):
        after = fixed_loss(manager, manager.base().unet, f"<lora:sks:1> {PROMPT}", folder)
    assert after < 0.85 * before


def test_images_with_the_lora_are_closer_to_the_photos(manager, trained):
    """Compared with the photos as the tiny model's random VAE draws them (encoded and decoded): its best."""
    _, _, folder = trained
    vae = manager.base().vae
    latents = data.encode_latents(vae, [Image.open(p).convert("RGB") for p in sorted(folder.glob("*.png"))])
    with torch.no_grad():
        drawn = vae.decode(latents / vae.config.scaling_factor).sample.clamp(-1, 1)
    photos = ((drawn + 1) * 127.5).permute(0, 2, 3, 1).numpy()

    def distance(picture):
        return float(np.min(((photos - picture) ** 2).mean(axis=(1, 2, 3))))

    seeds = (7, 8, 9)
    plain = np.mean([distance(image(manager, PROMPT, s)) for s in seeds])
    with_lora = np.mean([distance(image(manager, f"<lora:sks:1> {PROMPT}", s)) for s in seeds])
    assert with_lora < 0.995 * plain


def test_progress_samples_and_loss_csv(trained):
    result, seen, _ = trained
    assert [p.step for p in seen] == list(range(1, 31))
    assert seen[-1].eta_s == 0 and seen[0].eta_s > 0 and seen[-1].loss == result.losses[-1]
    assert [p.name for p in seen[14].samples] == ["step-000015-1.png", "step-000015-2.png"]
    assert [p.name for p in result.samples][-2:] == ["step-000030-1.png", "step-000030-2.png"]
    assert Image.open(result.samples[-1]).size == (SIZE, SIZE)
    rows = (result.run_dir / "loss.csv").read_text().splitlines()
    assert rows[0] == "step,loss,lr,seconds" and len(rows) == 31 and rows[-1].startswith("30,")


# the file
def test_the_file_has_kohya_keys_and_metadata(manager, trained):
    result, _, _ = trained
    assert result.lora == Path(manager.loras.folder) / "sks.safetensors"
    tensors = load_file(result.lora)
    downs = [k for k in tensors if k.endswith(".lora_down.weight")]
    assert downs and all(k.startswith("lora_unet_") for k in tensors)
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight" in tensors
    assert all(f"{k.removesuffix('.lora_down.weight')}.alpha" in tensors for k in downs)
    assert float(tensors[downs[0].replace(".lora_down.weight", ".alpha")]) == 4.0
    with safe_open(result.lora, "pt") as handle:
        meta = handle.metadata()
    assert meta["ss_base_model_version"] == "sd_v1" and meta["ss_sd_model_name"] == "tiny"
    assert (meta["ss_network_dim"], meta["ss_network_alpha"], meta["ss_resolution"]) == ("4", "4", "(64, 64)")
    assert (meta["ss_steps"], meta["ss_max_train_steps"], meta["ss_num_train_images"]) == ("30", "30", "4")
    assert json.loads(meta["ss_tag_frequency"]) == {"1_sks object": {"photo of sks object": 4}}
    assert meta["modelspec.trigger_phrase"] == "sks object"


def test_diffusers_load_lora_weights_reads_the_file(trained):
    from engine.pipeline.components import build_tiny_pipeline

    result, _, _ = trained
    pipe = build_tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)

    def draw():
        return np.asarray(pipe("photo of sks object", num_inference_steps=4, width=SIZE, height=SIZE,
                               generator=torch.Generator().manual_seed(3)).images[0], dtype=np.float32)

    plain = draw()
    pipe.load_lora_weights(str(result.lora), adapter_name="sks")
    saved = load_file(result.lora)
    loaded = pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2.to_k.lora_A["sks"].weight
    key = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight"
    assert torch.equal(loaded.detach().to(saved[key].dtype), saved[key])
    layers = sum(1 for name, _ in pipe.unet.named_modules() if name.endswith("lora_A.sks"))
    assert layers == sum(1 for k in saved if k.endswith("lora_down.weight"))
    assert np.abs(draw() - plain).mean() > 1


# Stop, Resume, and the model others see
def test_resume_equals_an_uninterrupted_run_and_stop_keeps_a_usable_lora(manager, tmp_path):
    folder = shapes(tmp_path / "shapes")
    straight = train_lora(manager, request(folder, "split", steps=6, checkpoint_every=2, keep_checkpoints=2),
                          root=tmp_path / "straight")
    straight_file = load_file(straight.lora)
    assert [p.name for p in sorted((straight.run_dir / "checkpoints").iterdir())] == ["step-000004.pt",
                                                                                      "step-000006.pt"]
    before = image(manager, "a red disc")
    control, during = RunControl(), []

    def stop_at_three(progress):
        if progress.step == 3:
            during.append(image(manager, "a red disc"))  # another tab's request, mid-training
            control.stop()

    stopped = train_lora(manager, request(folder, "split", steps=6), control, stop_at_three, root=tmp_path / "split")
    assert stopped.stopped and stopped.steps_done == 3 and "Stopped at step 3 of 6" in stopped.notes[-1]
    assert np.array_equal(during[0], before)  # the training never showed through
    assert np.array_equal(image(manager, "<lora:split:1> a red disc"), image(manager, "<lora:split:1> a red disc"))
    assert not np.array_equal(image(manager, "<lora:split:1> a red disc"), before)  # the steps done are in the file
    resumed = resume_lora(manager, "split", root=tmp_path / "split")
    assert resumed.steps_done == 6 and not resumed.stopped and resumed.notes == ["Resumed at step 3 of 6."]
    assert resumed.losses == straight.losses
    a, b = straight_file, load_file(resumed.lora)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="no training named nobody"):
        resume_lora(manager, "nobody", root=tmp_path)


def test_text_encoder_flip_face_weight_and_prior_preservation(manager, tmp_path, astronaut):
    from PIL import ImageEnhance

    folder = tmp_path / "me"
    folder.mkdir()
    for i in range(3):
        ImageEnhance.Brightness(astronaut).enhance(1 + 0.05 * i).save(folder / f"me{i}.png")
    req = request(folder, "me", class_word="woman", steps=3, text_encoder=True, flip=True, face_weighted=True,
                  prior_preservation=True, class_images=2, sample_steps=2)
    messages = []
    result = train_lora(manager, req, on_progress=lambda p: messages.append(p.message), root=tmp_path)
    tensors = load_file(result.lora)
    assert any(k.startswith("lora_te_text_model_encoder_layers_0_self_attn_q_proj") for k in tensors)
    cached = sorted((tmp_path / "train" / "class-images").rglob("*.png"))
    assert len(cached) == 2 and messages[:2] == ["Class image 1 of 2", "Class image 2 of 2"]
    with safe_open(result.lora, "pt") as handle:
        meta = handle.metadata()
    assert (meta["ss_num_train_images"], meta["ss_num_reg_images"], meta["ss_flip_aug"]) == ("6", "2", "True")
    messages.clear()
    train_lora(manager, req, on_progress=lambda p: messages.append(p.message), root=tmp_path)
    assert "Class image 1 of 2" not in messages  # reused from the cache
    with manager.lora_scope("<lora:me:1> photo of me woman"):
        text_layers = [n for n, _ in manager.base().text_encoder.named_modules() if n.endswith("lora_A.lora0")]
    assert len(text_layers) == sum(1 for k in tensors if k.startswith("lora_te_") and k.endswith("lora_down.weight"))


def test_refusals(manager, tmp_path):
    folder = shapes(tmp_path / "shapes")
    (Path(manager.loras.folder) / "taken.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="already exists"):
        train_lora(manager, request(folder, "taken", overwrite=False), root=tmp_path)
    with pytest.raises(ValueError, match="path characters"):
        train_lora(manager, request(folder, "../up"), root=tmp_path)
