"""Full DreamBooth: every UNet weight (and optionally the text encoder's) trained, written as one A1111-layout
`weights/NAME.safetensors` that the model menu lists at once.

The training runs on an fp32 copy of the UNet (and text encoder): the loaded model, which other requests keep
using, never changes. Memory is the cost: for SD 1.5 the copy is 3.4 GB, its gradients as much, and Adam's state
twice that (a quarter with 8-bit Adam), hence the 16 GB GPU. The copy is dropped when the training ends.
There are no resumable checkpoints (each would be about 10 GB); Stop writes the model of the steps done.
"""
from __future__ import annotations

import gc
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine.image.request import RunControl
from engine.pipeline.components import CONFIG_METADATA
from engine.train import data, limits, optim, prior, samples
from engine.train.loop import MAX_GRAD_NORM, ProgressCallback, TrainProgress, run_folder, write_csv
from engine.train.loss import face_weight_map, min_snr_weights, weighted_loss
from engine.train.photos import PhotoSet, prepare_photos
from engine.train.request import TrainRequest, check_name, check_request, default_steps, default_warmup
from engine.train.shared import share_module
from engine.train.single_file import save_single_file

FULL_UNET_LR = 5e-6  # diffusers' train_dreambooth.py and HF's DreamBooth blog: higher rates overfit in ~100 steps
FILE_DTYPE = torch.float16  # as SD 1.5 checkpoints ship: 2 GB


@dataclass
class FullResult:
    model: Path  # weights/NAME.safetensors, in the model menu
    steps_done: int
    steps: int
    stopped: bool
    run_dir: Path  # photos/, samples/, loss.csv, run.json
    losses: list[float]
    samples: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def model_file(weights_dir: Path, name: str) -> Path:
    return Path(weights_dir) / f"{name}.safetensors"


def check_model_name(name: str, weights_dir: Path, overwrite: bool) -> str:
    """A name fit for a file and trigger word, not already a model in weights/ unless `overwrite`."""
    name = check_name(name, Path(weights_dir), overwrite=True)
    taken = [p for p in Path(weights_dir).glob("*") if p.stem.lower() == name.lower()
             and p.suffix.lower() in (".safetensors", ".ckpt")] if Path(weights_dir).is_dir() else []
    if taken and not overwrite:
        raise ValueError(f"A model named {taken[0].name} already exists in {weights_dir}; choose another name or "
                         "overwrite it.")
    return name


def trainable_copy(module: torch.nn.Module, device) -> torch.nn.Module:
    """An fp32 copy of `module`'s parameters (its buffers still shared), all trainable; the module is untouched."""
    twin = share_module(module)
    for parameter in twin.parameters():
        parameter.data = parameter.data.to(device, torch.float32, copy=True)
        parameter.requires_grad_(True)
    return twin


def train_full(manager, req: TrainRequest, control: RunControl | None = None,
               on_progress: ProgressCallback | None = None, photos: PhotoSet | None = None,
               root: Path | None = None, check_device: bool = True) -> FullResult:
    """Fine-tune the loaded model's UNet on `req.images` and write weights/NAME.safetensors.

    The request's learning rates are used as given: FULL_UNET_LR (5e-6) is the recipe, with prior preservation.
    `check_device=False` skips the GPU check, for bench/train.py only.
    """
    # 1. check everything before any slow work
    req = check_request(req)
    req.name = check_model_name(req.name, Path(manager.weights_dir), req.overwrite)
    base, device = manager.base(), manager.device
    limits.check_family(base.unet.config)
    refusal = limits.full_dreambooth_refusal(device, limits.model_kind(manager)) if check_device else None
    if refusal:
        raise ValueError(refusal)
    size = sum(p.numel() for m in (base.unet, base.vae, base.text_encoder) for p in m.parameters()) * 2
    Path(manager.weights_dir).mkdir(parents=True, exist_ok=True)
    if shutil.disk_usage(Path(manager.weights_dir)).free < size + limits.SAMPLE_ROOM:
        raise ValueError(f"Not enough disk for the model file: it needs about {size / 2**20:.0f} MB in "
                         f"{Path(manager.weights_dir)}; free some space.")
    photos = photos or prepare_photos(Path(req.images), req.class_word, req.resolution, req.captions)
    notes = list(photos.notes)
    run_dir = run_folder(req.name, root).with_name(f"{req.name}.full")  # "." keeps it apart from any LoRA run
    shutil.rmtree(run_dir, ignore_errors=True)
    (run_dir / "photos").mkdir(parents=True)
    for i, photo in enumerate(photos.photos):
        photo.image.save(run_dir / "photos" / f"{i:03d}.png")
    (run_dir / "run.json").write_text(json.dumps({"request": req.to_json(), "full": True,
                                                  "model": manager.model_label}, indent=1))
    if not req.prior_preservation:
        notes.append("Full DreamBooth without prior preservation can make every photo of the class look like "
                      "the subject; prior preservation is recommended.")
    try:
        return _train(manager, req, photos, run_dir, control, on_progress, notes)
    finally:
        gc.collect()  # the copies are gone with _train's frame; give their memory back now
        if str(device).startswith("cuda"):
            torch.cuda.empty_cache()


def _train(manager, req: TrainRequest, photos: PhotoSet, run_dir: Path, control: RunControl | None,
           on_progress: ProgressCallback | None, notes: list[str]) -> FullResult:
    base, device, dtype = manager.base(), manager.device, manager.dtype
    started = time.time()
    report = on_progress or (lambda progress: None)
    examples = photos.photos + ([p.mirrored() for p in photos.photos] if req.flip else [])
    steps = req.steps or default_steps(len(photos.photos))
    warmup = default_warmup(steps) if req.warmup_steps is None else req.warmup_steps
    autocast = {"device_type": str(device).split(":")[0], "dtype": dtype, "enabled": dtype != torch.float32}

    # 1. class images from the plain model, then the trainable copies
    prior_images = []
    if req.prior_preservation:
        folder = prior.class_folder(run_dir.parent / "class-images", manager.model_label, req.class_word,
                                    req.resolution)
        prior_images = prior.class_images(
            base, share_module(base.unet).eval(), share_module(base.text_encoder).eval(), folder, req.class_word,
            req.class_images, req.resolution, req.sample_steps,
            on_image=lambda i, n: report(TrainProgress(0, steps, message=f"Class image {i} of {n}")))
    unet = trainable_copy(base.unet, device)
    text_encoder = trainable_copy(base.text_encoder, device) if req.text_encoder else share_module(base.text_encoder)
    unet.enable_gradient_checkpointing()
    if req.text_encoder:
        text_encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    # 2. inputs encoded once
    latents = data.encode_latents(base.vae, [e.image for e in examples])
    ids = data.tokens(base.tokenizer, [data.caption_prompt(req.name, req.class_word, e.caption) for e in examples])
    class_latents = data.encode_latents(base.vae, prior_images) if prior_images else None
    class_ids = data.tokens(base.tokenizer, [prior.class_prompt(req.class_word)]) if prior_images else None
    frozen = {}
    if not req.text_encoder:
        with torch.no_grad():
            frozen["photos"] = text_encoder(ids.to(device))[0]
            if class_ids is not None:
                frozen["class"] = text_encoder(class_ids.to(device))[0]

    # 3. optimiser and schedule
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler

    params = list(unet.parameters()) + (list(text_encoder.parameters()) if req.text_encoder else [])
    groups = [{"params": list(unet.parameters()), "lr": req.unet_lr}]
    if req.text_encoder:
        groups.append({"params": list(text_encoder.parameters()), "lr": req.text_encoder_lr})
    optimizer, optimizer_name, note = optim.make_optimizer(groups, device)
    notes += [note] if note else []
    schedule = get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=warmup)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 and str(device).startswith("cuda") else None
    noise_scheduler = DDPMScheduler.from_config(base.scheduler.config)
    prediction = noise_scheduler.config.prediction_type

    def sample(step: int) -> list[Path]:
        unet.eval()
        text_encoder.eval()
        with torch.autocast(**autocast):
            images = samples.render(base, unet, text_encoder, samples.sample_prompts(req.name, req.class_word),
                                    req.resolution, req.sample_steps)
        return samples.save(images, run_dir / "samples", step)

    # 4. the steps (the LoRA loop's recipe: Min-SNR, face weights, prior loss)
    made: list[Path] = []
    rows: list[list] = []
    step, durations, stopped = 0, [], False
    while step < steps:
        if control is not None and control.stopped:
            stopped = True
            break
        tick = time.perf_counter()
        unet.train()
        text_encoder.train(req.text_encoder)
        generator = torch.Generator().manual_seed(req.seed * 1_000_003 + step)
        picked = data.batch_indices(step, req.batch_size, len(examples), req.seed)
        x0 = latents[picked]
        embeds = text_encoder(ids[picked].to(device))[0] if req.text_encoder else frozen["photos"][picked]
        boxes = [examples[i].face_box for i in picked]
        count = len(picked)
        if class_latents is not None:
            chosen = [(step * req.batch_size + j) % len(class_latents) for j in range(count)]
            x0 = torch.cat([x0, class_latents[chosen]])
            more = text_encoder(class_ids.to(device))[0] if req.text_encoder else frozen["class"]
            embeds = torch.cat([embeds, more.expand(count, -1, -1)])
            boxes += [None] * count
        noise = torch.randn(x0.shape, generator=generator).to(device)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(x0),),
                                  generator=generator).to(device)
        noisy = noise_scheduler.add_noise(x0, noise, timesteps)
        target = noise_scheduler.get_velocity(x0, noise, timesteps) if prediction == "v_prediction" else noise
        with torch.autocast(**autocast):
            predicted = unet(noisy.float(), timesteps, encoder_hidden_states=embeds.float()).sample.float()
        weights = min_snr_weights(timesteps, noise_scheduler.alphas_cumprod, req.min_snr_gamma, prediction) \
            if req.min_snr_gamma > 0 else None
        pixel_weights = face_weight_map(boxes, req.resolution, x0.shape[-1], req.face_weight) \
            if req.face_weighted else None
        loss = weighted_loss(predicted[:count], target[:count].float(), _part(weights, 0, count),
                             _part(pixel_weights, 0, count))
        if class_latents is not None:
            loss = loss + req.prior_loss_weight * weighted_loss(predicted[count:], target[count:].float(),
                                                                _part(weights, count, None))
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            optimizer.step()
        schedule.step()
        step += 1
        durations.append(time.perf_counter() - tick)
        rows.append([step, float(loss.detach()), schedule.get_last_lr()[0], round(durations[-1], 4)])
        new = sample(step) if req.sample_every and step % req.sample_every == 0 and step < steps else []
        made += new
        per_step = sum(durations[-20:]) / len(durations[-20:])
        report(TrainProgress(step, steps, rows[-1][1], time.time() - started, per_step * (steps - step), new))

    # 5. Stop or the end: the last samples, the loss CSV and the model file of the steps done
    optimizer.zero_grad(set_to_none=True)
    del optimizer, schedule, params, groups  # Adam's state goes before the file's copy is made
    write_csv(run_dir / "loss.csv", rows)
    if step > 0 and (not made or not made[-1].name.startswith(f"step-{step:06d}")):
        made += sample(step)
    metadata = {
        "modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": "stable-diffusion-v1",
        "modelspec.implementation": "diffusers", "modelspec.title": req.name,
        "modelspec.trigger_phrase": f"{req.name} {req.class_word}",
        "modelspec.resolution": f"{req.resolution}x{req.resolution}",
        "ss_training_comment": f"Full DreamBooth of {manager.model_label}: trigger word {req.name}, class "
                               f"{req.class_word}", "ss_sd_model_name": manager.model_label,
        "ss_steps": str(step), "ss_max_train_steps": str(steps), "ss_num_train_images": str(len(examples)),
        "ss_num_reg_images": str(len(prior_images)), "ss_learning_rate": str(req.unet_lr),
        "ss_train_text_encoder": str(req.text_encoder), "ss_optimizer": optimizer_name, "ss_seed": str(req.seed),
    }
    if limits.model_kind(manager) == "tiny":
        metadata[CONFIG_METADATA] = "tiny"  # so the app's loader picks the tiny configs for it
    path = save_single_file(model_file(Path(manager.weights_dir), req.name), unet, base.vae, text_encoder, metadata,
                            FILE_DTYPE)
    if stopped:
        notes.append(f"Stopped at step {step} of {steps}; the model holds the steps done.")
    return FullResult(path, step, steps, stopped, run_dir, [r[1] for r in rows], made, notes)


def _part(values: torch.Tensor | None, start: int, stop: int | None) -> torch.Tensor | None:
    return None if values is None else values[start:stop]
