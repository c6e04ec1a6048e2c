"""DreamBooth LoRA training on the loaded model: photos in, a kohya-format LoRA out, with samples and checkpoints.

The LoRA layers live in twin modules that share every tensor with the model (engine.train.shared), so the other
tabs keep generating with the plain model while a training runs, and no base weight is copied or changed.
"""
from __future__ import annotations

import csv
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from engine.files.outputs import output_root
from engine.image.request import RunControl
from engine.train import checkpoints, data, kohya, limits, network, optim, parallel, prior, samples
from engine.train.loss import face_weight_map, min_snr_weights, weighted_loss
from engine.train.photos import Photo, PhotoSet, prepare_photos
from engine.train.request import TrainRequest, check_name, check_request, default_steps, default_warmup
from engine.train.shared import share_module

MAX_GRAD_NORM = 1.0


@dataclass
class TrainProgress:
    """Where a training stands, reported after every step (and while class images are made)."""

    step: int
    steps: int
    loss: float | None = None
    elapsed_s: float = 0.0
    eta_s: float | None = None
    samples: list[Path] = field(default_factory=list)  # the images made at this step, if any
    message: str = ""


@dataclass
class TrainResult:
    lora: Path  # the LoRA file, usable with <lora:NAME:1>
    steps_done: int
    steps: int
    stopped: bool
    run_dir: Path  # photos/, samples/, checkpoints/, loss.csv, run.json
    losses: list[float]
    samples: list[Path]
    notes: list[str]


ProgressCallback = Callable[[TrainProgress], None]


def run_folder(name: str, root: Path | None = None) -> Path:
    """outputs/train/NAME/: the run's photos, samples, checkpoints and loss CSV; Resume finds it by name."""
    return (root or output_root()) / "train" / name


def train_lora(manager, req: TrainRequest, control: RunControl | None = None,
               on_progress: ProgressCallback | None = None, photos: PhotoSet | None = None,
               root: Path | None = None, steps_this_call: int | None = None) -> TrainResult:
    """Train a new LoRA from `req.images` (or the already prepared `photos`) and write it to the LoRA folder.

    `steps_this_call` (*optional*, defaults to all): train at most that many steps now, then write a checkpoint
    and the LoRA of the steps done, as Stop does; `resume_lora` goes on from there (ZeroGPU's short calls).
    """
    # 1. check everything before any slow work
    req = check_request(req)
    req.name = check_name(req.name, manager.loras.folder, req.overwrite)
    base = manager.base()
    limits.check_family(base.unet.config)
    photos = photos or prepare_photos(Path(req.images), req.class_word, req.resolution, req.captions)
    # 2. a fresh run folder holding the crops, so Resume trains on exactly these
    run_dir = run_folder(req.name, root)
    with parallel.current().main_first():  # under accelerate launch, the main process writes the run folder
        if parallel.current().is_main:
            _keep_photos(run_dir, req, photos.photos, manager.model_label)
    return _train(manager, req, photos.photos, run_dir, control, on_progress, None, list(photos.notes),
                  steps_this_call)


def _keep_photos(run_dir: Path, req: TrainRequest, photos: list[Photo], model: str) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)
    (run_dir / "photos").mkdir(parents=True)
    described = []
    for i, photo in enumerate(photos):
        file = f"{i:03d}.png"
        photo.image.save(run_dir / "photos" / file)
        described.append({"file": file, "name": photo.name, "caption": photo.caption,
                          "face_box": photo.face_box, "small": photo.small})
    (run_dir / "run.json").write_text(json.dumps({"request": req.to_json(), "photos": described, "model": model},
                                                 indent=1))


def resume_lora(manager, name: str, control: RunControl | None = None, on_progress: ProgressCallback | None = None,
                root: Path | None = None, steps_this_call: int | None = None) -> TrainResult:
    """Continue the training called `name` from its last checkpoint, to the steps it was started with (or at most
    `steps_this_call` more)."""
    run_dir = run_folder(name, root)
    if not (run_dir / "run.json").is_file():
        raise ValueError(f"There is no training named {name} to resume in {run_dir.parent}; start a new one.")
    saved = json.loads((run_dir / "run.json").read_text())
    req = check_request(TrainRequest(**saved["request"]))
    if saved.get("model") != manager.model_label:
        raise ValueError(f"{name} was trained on {saved.get('model')}, but {manager.model_label} is loaded; load "
                         f"{saved.get('model')} to resume it.")
    state = checkpoints.last_checkpoint(run_dir / "checkpoints")
    if state is None:
        raise ValueError(f"{name} has no checkpoint yet; start the training again.")
    photos = [Photo(p["name"], Image.open(run_dir / "photos" / p["file"]).convert("RGB"), p["caption"],
                    tuple(p["face_box"]) if p["face_box"] else None, p["small"]) for p in saved["photos"]]
    limits.check_family(manager.base().unet.config)
    return _train(manager, req, photos, run_dir, control, on_progress, state, [], steps_this_call)


def _train(manager, req: TrainRequest, photos: list[Photo], run_dir: Path, control: RunControl | None,
           on_progress: ProgressCallback | None, state: dict | None, notes: list[str],
           steps_this_call: int | None = None) -> TrainResult:
    base, device, dtype = manager.base(), manager.device, manager.dtype
    started = time.time()
    par = parallel.current()  # several processes under accelerate launch (engine.train.parallel), else one
    report = on_progress if on_progress and par.is_main else (lambda progress: None)
    examples = photos + ([p.mirrored() for p in photos] if req.flip else [])
    steps = req.steps or default_steps(len(photos))
    warmup = default_warmup(steps) if req.warmup_steps is None else req.warmup_steps

    # 1. twin modules over the model's tensors, LoRA layers in them only
    unet = share_module(base.unet)
    text_encoder = share_module(base.text_encoder)
    prior_images = []
    if req.prior_preservation:  # made before any LoRA is in the twins: the model's own idea of the class
        folder = prior.class_folder(run_dir.parent / "class-images", manager.model_label, req.class_word,
                                    req.resolution)
        with par.main_first():  # made once, by the main process; the others read the cache
            prior_images = prior.class_images(
                base, unet.eval(), text_encoder.eval(), folder, req.class_word, req.class_images, req.resolution,
                req.sample_steps,
                on_image=lambda i, n: report(TrainProgress(0, steps, message=f"Class image {i} of {n}")))
    unet_params = network.add_lora(unet, req.rank, req.alpha, network.UNET_TARGETS, req.seed)
    text_params = network.add_lora(text_encoder, req.rank, req.alpha, network.TEXT_TARGETS, req.seed + 1) \
        if req.text_encoder else []
    unet.enable_gradient_checkpointing()
    if text_params:
        text_encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    limits.check_disk(run_dir, sum(p.numel() for p in unet_params + text_params), req.keep_checkpoints)

    # 2. inputs encoded once: latents, and the caption embeddings when the text encoder stays frozen
    latents = data.encode_latents(base.vae, [e.image for e in examples])
    ids = data.tokens(base.tokenizer, [data.caption_prompt(req.name, req.class_word, e.caption) for e in examples])
    class_latents = data.encode_latents(base.vae, prior_images) if prior_images else None
    class_ids = data.tokens(base.tokenizer, [prior.class_prompt(req.class_word)]) if prior_images else None
    frozen = {}
    if not text_params:
        with torch.no_grad():
            frozen["photos"] = text_encoder(ids.to(device))[0]
            if class_ids is not None:
                frozen["class"] = text_encoder(class_ids.to(device))[0]

    # 3. optimiser, schedule and noise, restored from the checkpoint on Resume
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler

    groups = [{"params": unet_params, "lr": req.unet_lr}]
    if text_params:
        groups.append({"params": text_params, "lr": req.text_encoder_lr})
    optimizer, optimizer_name, optimizer_note = optim.make_optimizer(groups, device)
    if optimizer_note and state is None:
        notes.append(optimizer_note)
    schedule = get_scheduler("constant_with_warmup", optimizer, num_warmup_steps=warmup)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 and str(device).startswith("cuda") else None
    noise_scheduler = DDPMScheduler.from_config(base.scheduler.config)
    prediction = noise_scheduler.config.prediction_type
    start, rows = 0, []
    if state is not None:
        network.load_lora_state(unet, state["unet"])
        if text_params:
            network.load_lora_state(text_encoder, state["text_encoder"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start, rows = state["step"], [list(r) for r in state["rows"]]
        notes.append(f"Resumed at step {start} of {steps}.")

    def checkpoint(step: int) -> None:
        if not par.is_main:
            return
        checkpoints.save_checkpoint(run_dir / "checkpoints", step, {
            "step": step, "unet": network.lora_state(unet), "text_encoder": network.lora_state(text_encoder),
            "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "rows": rows,
            "scaler": scaler.state_dict() if scaler else None}, req.keep_checkpoints)
        write_csv(run_dir / "loss.csv", rows)

    def sample(step: int) -> list[Path]:
        if not par.is_main:
            return []
        unet.eval()
        text_encoder.eval()
        images = samples.render(base, unet, text_encoder, samples.sample_prompts(req.name, req.class_word),
                                req.resolution, req.sample_steps)
        return samples.save(images, run_dir / "samples", step)

    # 4. the steps
    made: list[Path] = []
    step, durations, stopped = start, [], False
    end = steps if steps_this_call is None else min(steps, start + max(int(steps_this_call), 1))
    while step < end:
        if par.any(control is not None and control.stopped):
            stopped = True
            break
        tick = time.perf_counter()
        unet.train()
        text_encoder.train(bool(text_params))
        generator = torch.Generator().manual_seed(req.seed * 1_000_003 + step)  # per step: Resume repeats it
        picked = par.share(data.batch_indices(step, req.batch_size * par.world, len(examples), req.seed))
        x0 = latents[picked]
        if text_params:
            embeds = text_encoder(ids[picked].to(device))[0]
        else:
            embeds = frozen["photos"][picked]
        boxes = [examples[i].face_box for i in picked]
        count = len(picked)
        if class_latents is not None:
            chosen = [(step * req.batch_size * par.world + j) % len(class_latents)
                      for j in par.share(range(count * par.world))]
            x0 = torch.cat([x0, class_latents[chosen]])
            more = frozen["class"] if not text_params else text_encoder(class_ids.to(device))[0]
            embeds = torch.cat([embeds, more.expand(count, -1, -1)])
            boxes += [None] * count
        noise, timesteps = par.draw(x0.shape, 1 if class_latents is None else 2, generator,
                                    noise_scheduler.config.num_train_timesteps)
        noise, timesteps = noise.to(device), timesteps.to(device)
        noisy = noise_scheduler.add_noise(x0, noise, timesteps)
        target = noise_scheduler.get_velocity(x0, noise, timesteps) if prediction == "v_prediction" else noise
        with torch.autocast(device_type=str(device).split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
            predicted = unet(noisy.to(dtype), timesteps, encoder_hidden_states=embeds.to(dtype)).sample
        weights = min_snr_weights(timesteps, noise_scheduler.alphas_cumprod, req.min_snr_gamma, prediction) \
            if req.min_snr_gamma > 0 else None
        pixel_weights = face_weight_map(boxes, req.resolution, x0.shape[-1], req.face_weight) \
            if req.face_weighted else None
        loss = weighted_loss(predicted[:count], target[:count], _part(weights, 0, count),
                             _part(pixel_weights, 0, count))
        if class_latents is not None:
            loss = loss + req.prior_loss_weight * weighted_loss(predicted[count:], target[count:],
                                                                _part(weights, count, None))
        optimizer.zero_grad(set_to_none=True)
        params = unet_params + text_params
        if scaler is not None:
            scaler.scale(loss).backward()
            par.average_gradients(params)
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            par.average_gradients(params)
            torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
            optimizer.step()
        schedule.step()
        step += 1
        durations.append(time.perf_counter() - tick)
        rows.append([step, float(par.average(loss.detach())), schedule.get_last_lr()[0], round(durations[-1], 4)])
        new = sample(step) if req.sample_every and step % req.sample_every == 0 and step < steps else []
        made += new
        if step % req.checkpoint_every == 0 and step < steps:
            checkpoint(step)
        per_step = sum(durations[-20:]) / len(durations[-20:])
        report(TrainProgress(step, steps, rows[-1][1], time.time() - started, per_step * (steps - step), new))

    # 5. Stop or the end: a checkpoint, the last samples and a usable LoRA of the steps done
    if step > start or state is None:
        checkpoint(step)
    if step > 0 and (not made or not made[-1].name.startswith(f"step-{step:06d}")):
        made += sample(step)
    metadata = kohya.kohya_metadata(
        name=req.name, class_word=req.class_word, model=manager.model_label, rank=req.rank, alpha=req.alpha,
        resolution=req.resolution, steps_done=step, max_steps=steps, images=len(examples),
        captions=[data.caption_prompt(req.name, req.class_word, e.caption) for e in examples],
        text_encoder=bool(text_params), unet_lr=req.unet_lr, text_encoder_lr=req.text_encoder_lr,
        warmup_steps=warmup, seed=req.seed, min_snr_gamma=req.min_snr_gamma, batch_size=req.batch_size,
        prior_images=len(prior_images), prior_loss_weight=req.prior_loss_weight, flip=req.flip,
        precision=str(dtype).removeprefix("torch."), started=started, optimizer=optimizer_name)
    tensors = kohya.kohya_tensors(network.lora_state(unet), network.lora_state(text_encoder) if text_params else {},
                                  req.alpha)
    lora = Path(manager.loras.folder) / f"{req.name}.safetensors"
    if par.is_main:
        kohya.write_file(lora, tensors, metadata)
    if stopped:
        notes.append(f"Stopped at step {step} of {steps}; the LoRA holds the steps done, and Resume continues.")
    return TrainResult(lora, step, steps, stopped, run_dir, [r[1] for r in rows], made, notes)


def _part(values: torch.Tensor | None, start: int, stop: int | None) -> torch.Tensor | None:
    return None if values is None else values[start:stop]


def write_csv(path: Path, rows: list) -> None:
    """step,loss,lr,seconds, written to a temporary file and renamed."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "loss", "lr", "seconds"])
        writer.writerows(rows)
    temporary.replace(path)
