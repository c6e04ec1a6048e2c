"""Train: photos of a person or a thing in, a LoRA out (engine.train), with its crops, time, loss curve and samples."""
from __future__ import annotations

import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from engine.files.outputs import output_root
from engine.pipeline.models import TINY
from engine.train import chunks, limits
from engine.train.estimate import estimate
from engine.train.jobs import TrainJob, trainings
from engine.train.loop import TrainResult
from engine.train.loss import smooth_curve
from engine.train.photos import PhotoSet, prepare_photos
from engine.train.request import TrainRequest, check_request, default_steps, is_person
from engine.train.uploads import apply_captions, caption_lines, gather_uploads, parse_captions
from tabs import gpu
from tabs.common import check_inputs_match
from tabs.running import progress_bar, run_buttons, wire_run, wire_stop
from tabs.session import SessionControl, user_error, user_errors

TASK = "train"
CLASS_WORDS = ["person", "man", "woman", "dog", "object"]
POLL_S = 0.5


def try_prompt(name: str, class_word: str, full: bool = False) -> str:
    """What "Try it" sends to Text to image: the LoRA's tag, or after Full DreamBooth the trigger word alone."""
    return f"photo of {name} {class_word}" if full else f"<lora:{name}:1> photo of {name} {class_word}"


def loss_frame(losses: list[tuple[int, float]]) -> pd.DataFrame:
    """The smoothed loss per step (one step's loss jumps with its random timestep; the trend is what tells)."""
    return pd.DataFrame({"step": pd.Series([step for step, _ in losses], dtype="int64"),
                         "loss": pd.Series(smooth_curve([loss for _, loss in losses]), dtype="float64")})


def sample_items(job: TrainJob) -> list[tuple[str, str]]:
    """The samples so far, newest first, each captioned with its step and prompt."""
    items = []
    for path in reversed(job.samples):
        step, _, which = Path(path).stem.removeprefix("step-").partition("-")
        items.append((str(path), f"step {int(step)} · {'alone' if which == '1' else 'in a scene'}"))
    return items


def upload_folder() -> Path:
    return output_root() / "train" / "uploads" / uuid.uuid4().hex[:12]


def gathered(files) -> Path:
    """The dropped files (paths from Gradio) in one folder, or the one zip."""
    paths = [Path(f if isinstance(f, str) else getattr(f, "name", f)) for f in (files or [])]
    return gather_uploads([(p.name, p.read_bytes()) for p in paths], upload_folder())


def files_key(files, class_word: str, resolution) -> tuple:
    """What the prepared crops depend on: the files, the class word and the size."""
    paths = [Path(f if isinstance(f, str) else getattr(f, "name", f)) for f in (files or [])]
    return tuple((p.name, p.stat().st_size) for p in paths if p.exists()), (class_word or "").strip(), int(resolution)


def build(manager) -> SimpleNamespace:
    """The tab's widgets and events; returns the Try it button and its prompt, which app.py sends to Text to image."""
    tiny = manager.model_name == TINY
    full_refusal = chunks.FULL_REFUSAL if gpu.zero_gpu() else limits.full_dreambooth_refusal(
        manager.device, limits.model_kind(manager))

    def time_note(count: int, steps, resolution, prior_preservation) -> str:
        if not count:
            return ""
        total = int(steps) if steps else default_steps(count)
        return estimate(total, int(resolution), manager.device, tiny, bool(prior_preservation))

    # 1. handlers
    def prepare(files, class_word, resolution, steps, prior_preservation):
        """The crops the training will see, the caption lines to fill in, and the time it will take."""
        if not files:
            return [], "", "", "", None
        try:
            photos = prepare_photos(gathered(files), (class_word or "").strip(), int(resolution))
        except ValueError as exc:
            return [], "", f"⚠️ {exc}", "", None
        how = "around the face" if is_person(class_word or "") else "centred"
        note = " ".join([f"{len(photos.photos)} photos, cropped {how} to {int(resolution)} px. Select a crop and "
                         "press **Leave out** to drop it.", *photos.notes])
        state = {"key": files_key(files, class_word, resolution), "photos": photos}
        return (gallery_of(photos), caption_lines([p.name for p in photos.photos], {p.name: p.caption for p in photos.photos}),
                note, time_note(len(photos.photos), steps, resolution, prior_preservation), state)

    def gallery_of(photos: PhotoSet):
        return [(p.image, p.name) for p in photos.photos]

    def leave_out(prepared, index, captions, steps, resolution, prior_preservation):
        if not prepared or index is None or not 0 <= index < len(prepared["photos"].photos):
            raise user_error("Select a crop in the gallery first, then press Leave out.")
        photos = prepared["photos"]
        gone = photos.photos.pop(index)
        lines = [line for line in (captions or "").splitlines() if line.partition(":")[0].strip() != gone.name]
        note = f"{gone.name} is left out; {len(photos.photos)} photos go on."
        if len(photos.photos) < 3:
            note += " Training needs at least 3."
        return (gallery_of(photos), "\n".join(lines), note,
                time_note(len(photos.photos), steps, resolution, prior_preservation), prepared, None)

    def remember(evt: gr.SelectData):
        return evt.index

    def train(files, name, class_word, captions, steps, rank, resolution, text_encoder, flip, face_weighted,
              prior_preservation, checkpoint_every, keep_checkpoints, sample_every, overwrite, full, prepared,
              control, progress=gr.Progress()):
        control.reset()
        control.begin()
        with user_errors():
            req = check_request(TrainRequest(
                images="", name=name or "", class_word=(class_word or "").strip(), steps=int(steps or 0) or None,
                rank=int(rank), resolution=int(resolution), text_encoder=bool(text_encoder), flip=bool(flip),
                face_weighted=bool(face_weighted), prior_preservation=bool(prior_preservation),
                checkpoint_every=int(checkpoint_every), keep_checkpoints=int(keep_checkpoints),
                sample_every=int(sample_every), overwrite=bool(overwrite), alpha=min(8.0, int(rank))))
            captions = parse_captions(captions)
            photos = None
            if prepared and prepared["key"] == files_key(files, req.class_word, req.resolution):
                photos = PhotoSet(apply_captions(list(prepared["photos"].photos), captions),
                                  notes=list(prepared["photos"].notes))
                if len(photos.photos) < 3:
                    raise ValueError(f"Only {len(photos.photos)} photos are left; training needs at least 3.")
            else:
                req.images, req.captions = str(gathered(files)), captions
            if gpu.zero_gpu():
                if full:
                    raise ValueError(chunks.FULL_REFUSAL)
                call = chunks.plan_start(manager, req, photos)
            else:
                job = trainings(manager).start(req, photos, control=control, full=bool(full))
        yield from in_chunks(call, control, progress) if gpu.zero_gpu() else follow(job, control, progress)

    def resume(name, control, progress=gr.Progress()):
        control.reset()
        control.begin()
        with user_errors():
            if gpu.zero_gpu():
                call = chunks.plan_resume(manager, name)
            else:
                job = trainings(manager).resume((name or "").strip(), control=control)
        yield from in_chunks(call, control, progress) if gpu.zero_gpu() else follow(job, control, progress)

    def report(job: TrainJob, control: SessionControl, progress) -> None:
        """The job's step, loss and time left on the bar."""
        fraction = job.step / job.steps if job.steps else 0.0
        text = job.message or (f"Step {job.step} of {job.steps}" +
                               (f" · loss {job.loss:.4f}" if job.loss is not None else ""))
        progress(fraction, desc=text)
        control.update(fraction, text)
        if job.eta_s is not None:
            control.progress.eta, control.progress.updated = job.eta_s, time.monotonic()

    def follow(job: TrainJob, control: SessionControl, progress):
        """The job's progress on the bar, its loss curve and samples as they come, then the LoRA and Try it."""
        shown = None
        try:
            while True:
                ended = job.wait(POLL_S)
                report(job, control, progress)
                if (len(job.losses), len(job.samples)) != shown:
                    shown = (len(job.losses), len(job.samples))
                    yield loss_frame(job.losses), sample_items(job), gr.skip(), gr.skip()
                if ended:
                    break
        finally:
            if not job.finished:  # the page went away: stop, keeping a checkpoint and a usable LoRA
                job.control.stop()
        yield ended_outputs(job, control)

    # ZeroGPU: a training as one GPU call per few hundred steps, each ending with a checkpoint and a usable LoRA
    def train_chunk(call: chunks.ChunkCall, control):
        job = lambda on_progress, ctl: chunks.run_call(manager, call, ctl, on_progress)  # noqa: E731
        yield from gpu.pump(job, control)

    chunk = gpu.on_gpu(train_chunk, lambda call, control=None: call.seconds(), inner=True)

    def in_chunks(call: chunks.ChunkCall, control: SessionControl, progress):
        """The training in ZeroGPU calls, shown as `follow` shows a training in a thread: the bar, the loss curve
        and the samples go on across the calls."""
        job = TrainJob(uuid.uuid4().hex[:12], call.name, control, call.req.class_word, steps=call.total,
                       losses=list(call.losses))
        if call.losses:
            job.step, job.loss = call.losses[-1]
        note = (f"This training runs {call.per_call} steps per GPU call, each ending with a checkpoint; each call "
                f"asks ZeroGPU for up to {call.next(0).seconds()} s.")
        shown, refused, results = 0.0, None, 0
        for kind, value in gpu.train_in_chunks(chunk, call, control, manager.gate, note):
            if kind == "update":
                job.record(value)
                report(job, control, progress)
                if value.samples or time.monotonic() - shown >= POLL_S:
                    shown = time.monotonic()
                    yield loss_frame(job.losses), sample_items(job), gr.skip(), gr.skip()
            elif kind == "result":
                absorb(job, value, continuing=results > 0)
                results += 1
            else:
                refused = value
        if job.result is None:  # Stop came before the first call
            control.end(failed=False)
            yield loss_frame(job.losses), sample_items(job), "Stopped before the first GPU call: nothing changed.", ""
            return
        if refused:
            job.state = "stopped"
            job.notes.append(f"ZeroGPU refused the next GPU call ({refused}); what was trained is kept, and "
                             f"**Resume** continues from the checkpoint at step {job.step}.")
        yield ended_outputs(job, control)

    def absorb(job: TrainJob, result: TrainResult, continuing: bool) -> None:
        """A call's result into the job: the steps done, the end-of-call samples and the notes."""
        job.result, job.step, job.steps = result, result.steps_done, result.steps
        job.notes.extend(n for n in result.notes if n not in job.notes and
                         not (continuing and n.startswith("Resumed at step")))
        job.samples.extend(p for p in result.samples if p not in job.samples)
        job.eta_s = 0.0 if result.steps_done >= result.steps else job.eta_s
        job.state = "stopped" if result.stopped or result.steps_done < result.steps else "done"

    def ended_outputs(job: TrainJob, control: SessionControl):
        """The last outputs of an ended training: its curve, its samples, what it wrote, and the prompt to try."""
        if job.state == "failed":
            raise user_error(job.error)
        control.end(failed=False)
        written = job.written
        notes = [n for n in job.notes if not n.startswith("Stopped at step")]
        prompt = try_prompt(job.name, job.class_word, full=job.full)
        if job.full:
            said = (f"Stopped at step {job.step} of {job.steps}: `{written.name}` holds the steps done." if
                    job.state == "stopped" else f"Done: `{written.name}` ({job.step} steps).")
            where = f"It is in the Model menu now: pick it there, then try `{prompt}`."
        else:
            said = (f"Stopped at step {job.step} of {job.steps}: `{written.name}` holds the steps done, and "
                    "**Resume** continues." if job.state == "stopped" else f"Done: `{written.name}` ({job.step} steps).")
            where = f"It is in the LoRA picker of every tab now. Try it: `{prompt}`"
        text = "\n\n".join([said, where, *notes])
        return loss_frame(job.losses), sample_items(job), text, prompt

    # 2. layout
    with gr.Tab("Train", id=TASK):
        with gr.Row(equal_height=True):
            with gr.Column(scale=4):
                with gr.Row():
                    name = gr.Textbox(label="Name (trigger word and LoRA file name)", placeholder="e.g. jdoe",
                                      elem_id="train-name", scale=2)
                    class_word = gr.Dropdown(CLASS_WORDS, value="person", allow_custom_value=True, scale=1,
                                             label="Class word (or your own)", elem_id="train-class")
                files = gr.File(file_count="multiple", file_types=["image", ".zip", ".txt"], height=120,
                                label="Photos of the subject (3–50), or a zip (same-name .txt files are captions)",
                                elem_id="train-photos")
            with gr.Column(scale=1, min_width=160):
                run, stop = run_buttons(TASK, "Train")
                again = gr.Button("Resume", elem_id="train-resume")
        with gr.Row():
            with gr.Column():
                crops = gr.Gallery(label="Prepared crops (what the training sees)", columns=5, height=260,
                                   elem_id="train-crops", elem_classes=["ds-gallery"], allow_preview=False)
                crop_note = gr.Markdown(elem_id="train-crop-note")
                drop = gr.Button("Leave out the selected crop", size="sm", elem_id="train-drop")
                captions = gr.Textbox(label="Captions (optional): one line per photo, 'photo name: caption'", lines=3,
                                      elem_id="train-captions")
                time_line = gr.Markdown(elem_id="train-estimate")
                with gr.Accordion("Options", open=False, elem_id="train-options"):
                    with gr.Row():
                        steps = gr.Number(0, precision=0, minimum=0, label="Steps (0 = 100 per photo, 400–1,500)")
                        rank = gr.Slider(1, 128, value=16, step=1, label="Rank (alpha = 8)")
                        resolution = gr.Slider(64, 1024, value=manager.defaults().width, step=8,
                                               label="Resolution", elem_id="train-resolution")
                    text_encoder = gr.Checkbox(label="Also train the text encoder")
                    flip = gr.Checkbox(label="Flip: also train on mirrored photos")
                    face_weighted = gr.Checkbox(label="Face-weighted loss: count the face more (people)")
                    prior = gr.Checkbox(label="Prior preservation: train beside class images the model makes itself")
                    with gr.Row():
                        checkpoint_every = gr.Number(100, precision=0, minimum=1, label="Checkpoint every N steps")
                        keep = gr.Number(3, precision=0, minimum=1, label="Keep the last K checkpoints")
                        sample_every = gr.Number(100, precision=0, minimum=0, label="Samples every N steps (0: at the end)")
                    overwrite = gr.Checkbox(label="Overwrite a LoRA of the same name", elem_id="train-overwrite")
                    full = gr.Checkbox(label="Full DreamBooth (writes weights/NAME.safetensors)", value=False,
                                       interactive=full_refusal is None, info=full_refusal, elem_id="train-full")
            with gr.Column():
                bar = progress_bar(TASK)
                loss = gr.LinePlot(loss_frame([]), x="step", y="loss", title="Loss (smoothed)", height=220,
                                   elem_id="train-loss")
                samples = gr.Gallery(label="Samples (fixed prompts and seed; newest first)", columns=4, height=260,
                                     elem_id="train-samples", elem_classes=["ds-gallery"])
                result = gr.Markdown(elem_id="train-result")
                prompt = gr.Textbox(label="Prompt to try", interactive=False, elem_id="train-try-prompt")
                try_it = gr.Button("Try it in Text to image", elem_id="train-try")
        prepared = gr.State(None)
        selected = gr.State(None)
        control = gr.State(SessionControl())

    # 3. wiring
    inputs = {"files": files, "name": name, "class_word": class_word, "captions": captions, "steps": steps,
              "rank": rank, "resolution": resolution, "text_encoder": text_encoder, "flip": flip,
              "face_weighted": face_weighted, "prior_preservation": prior, "checkpoint_every": checkpoint_every,
              "keep_checkpoints": keep, "sample_every": sample_every, "overwrite": overwrite, "full": full,
              "prepared": prepared, "control": control}
    check_inputs_match(train, list(inputs))
    outputs = [loss, samples, result, prompt]
    common = dict(outputs=outputs, control=control, stop=stop, bar=bar, concurrency_id=TASK, concurrency_limit=None)
    wire_run(run.click, gpu.outer(train, chunk), inputs=list(inputs.values()), api_name="train", **common)
    wire_run(again.click, gpu.outer(resume, chunk), inputs=[name, control], api_name="train_resume", **common)
    wire_stop(stop, control, "stop_train")
    preparing = dict(inputs=[files, class_word, resolution, steps, prior],
                     outputs=[crops, captions, crop_note, time_line, prepared], api_name=False, concurrency_id="prepare")
    files.change(prepare, **preparing)
    class_word.change(prepare, **preparing)
    resolution.release(prepare, **preparing)
    for widget in (steps, prior):
        widget.change(lambda p, s, r, q: time_note(len(p["photos"].photos) if p else 0, s, r, q),
                      inputs=[prepared, steps, resolution, prior], outputs=time_line, api_name=False, queue=False)
    crops.select(remember, inputs=None, outputs=selected, api_name=False, queue=False)
    drop.click(leave_out, inputs=[prepared, selected, captions, steps, resolution, prior],
               outputs=[crops, captions, crop_note, time_line, prepared, selected], api_name=False)
    return SimpleNamespace(try_it=try_it, prompt=prompt, sizes=[resolution])
