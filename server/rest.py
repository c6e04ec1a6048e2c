"""REST endpoints under /api, documented at /docs: the same engine calls as the tabs, as JSON over HTTP."""
from __future__ import annotations

import base64
import json
import secrets
import uuid
from functools import partial
from pathlib import Path

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel, Field

from engine.backends.ray import WorkerStopped
from engine.control.api import units_from_json
from engine.faces.aging import AgingRequest, aging_timelapse, parse_ages
from engine.faces.gender import GenderRequest, gender_swap
from engine.files import pnginfo
from engine.files.outputs import next_path, output_root, task_dir
from engine.image.generate import image_to_image, inpaint, text_to_image
from engine.image.request import ImageRequest
from engine.jobs.gate import BUSY, Busy
from engine.jobs.runner import replica_of, run_job
from engine.pipeline.schedulers import DEFAULT_SAMPLER
from engine.text.limits import excerpt
from engine.text.presets import aging_preset, gender_preset
from engine.train.jobs import trainings
from engine.train.request import TrainRequest
from engine.train.uploads import gather_uploads, parse_captions

MAX_UPLOAD_BYTES = 20 * 1024 * 1024


CONTROLNET_FORM_HELP = ("ControlNet units as a JSON list, as /api/txt2img's `controlnet` (at most 3); a unit with no "
                        "image uses the uploaded photo; `inpaint_only` uses the mask")
FAST_DECODE_HELP = "decode with TAESD, the tiny VAE (weights/taesd); outside the face the photo stays as it was"
RESTORE_HELP = "restore the regenerated face with this restorer (weights/GFPGAN or weights/Codeformer); empty: off"
VISIBILITY_HELP = "how much of the restored face shows, 0 to 1"


class Txt2ImgBody(BaseModel):
    """Text to image, in diffusers' argument names."""

    prompt: str = Field(..., description="what to draw")
    negative_prompt: str = ""
    num_inference_steps: int = Field(20, ge=1, le=150)
    guidance_scale: float = Field(7.0, ge=1, le=30)
    width: int | None = Field(None, ge=64, le=2048, description="default: the model's size (512; 128 for tiny)")
    height: int | None = Field(None, ge=64, le=2048, description="default: the model's size (512; 128 for tiny)")
    seed: int = Field(-1, description="-1 picks a random seed")
    batch_count: int = Field(1, ge=1, le=16)
    sampler: str = DEFAULT_SAMPLER
    hires_scale: float | None = Field(None, ge=1, le=4, description="Hires. fix: upscale by this and redraw; "
                                                                    "null = off")
    hires_upscaler: str = Field("Latent", description="Hires. fix: Latent (and its variants), Lanczos, "
                                                               "Nearest or an upscaler model's name")
    hires_steps: int = Field(0, ge=0, le=150, description="Hires. fix: second-pass steps; 0 = num_inference_steps")
    hires_strength: float = Field(0.5, ge=0, le=1, description="Hires. fix: denoising strength of the second pass")
    variation_seed: int = Field(-1, description="Variations: the seed whose noise is blended in; -1 picks one")
    variation_strength: float = Field(0.0, ge=0, le=1, description="Variations: how far toward the variation "
                                                                   "seed's noise; 0 = off, 0.1-0.3 similar images")

    controlnet: list[dict] = Field([], description="ControlNet units (at most 3), each {module, model, image "
                                                   "(base64 or data URL), weight, guidance_start, guidance_end, "
                                                   "control_mode, resize_mode, low_threshold, high_threshold}")
    fast_decode: bool = Field(False, description="decode with TAESD, the tiny VAE (weights/taesd): ~16x cheaper, "
                                                 "less fine detail; PNG info says VAE Decoder: TAESD")


class ApiImage(BaseModel):
    png_base64: str
    seed: int
    parameters: str = ""
    age: int | None = None
    variation_seed: int | None = Field(None, description="the variation seed used, when variation_strength > 0")


class ImagesReply(BaseModel):
    images: list[ApiImage]
    notes: list[str] = []
    replica: str | None = Field(None, description="the Ray Serve replica that made the result (--ray); null "
                                                  "when the app's own process made it")


class ExtrasReply(BaseModel):
    png_base64: str
    parameters: str = Field("", description="the input's PNG info with Postprocess upscale by/to and upscaler")
    width: int
    height: int


class AgingReply(ImagesReply):
    video_url: str | None
    grid_png_base64: str | None
    seed: int
    identity_distance: list[float] | None = None
    identity_note: str | None = Field(None, description="the identity distances in one sentence")


class GenderReply(ImagesReply):
    identity_distance: list[float | None] | None = Field(
        None, description="per variant, on the edited face(s); null where no face was found in the result")
    identity_note: str | None = Field(None, description="the identity distances in one sentence")


class TrainReply(BaseModel):
    """Where a training stands; poll GET /api/train/{id} until `state` is done, stopped or failed."""

    id: str
    name: str
    state: str = Field(..., description="waiting (for a slot), training, done, stopped or failed")
    step: int
    steps: int
    loss: float | None = None
    elapsed_s: float
    eta_s: float | None = Field(None, description="seconds left, estimated from the recent steps")
    message: str = Field("", description="a stage before the steps, e.g. 'Class image 3 of 50'")
    error: str = Field("", description="why it failed, in one sentence")
    notes: list[str] = []
    sample_urls: list[str] = Field([], description="the sample images so far, oldest first")
    lora: str | None = Field(None, description="the LoRA's file name in the LoRA folder, once written")
    model: str | None = Field(None, description="with full=true: the model's file name in weights/, once written")
    prompt: str = Field(..., description="how to use it: <lora:NAME:1> photo of NAME CLASS (full: photo of NAME "
                                         "CLASS, with the new model picked)")


FACE_HELP = "1 = largest, 2 = next, ...; 'all' for every face"


def face_fields(face: str | None) -> dict:
    """The form's `face` (a number from 1, or 'all') as the engine's face_index and all_faces."""
    text = (face or "").strip().lower()
    if not text:
        return {"face_index": None, "all_faces": False}
    if text == "all":
        return {"face_index": None, "all_faces": True}
    try:
        number = int(text)
    except ValueError:
        raise ValueError(f"face: give a face number from 1 (the largest) or 'all', not {excerpt(face)}.") from None
    if number < 1:
        raise ValueError(f"face: faces are numbered from 1 (the largest), not {excerpt(number)}.")
    return {"face_index": number - 1, "all_faces": False}


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message})


def exception_handlers() -> dict:
    """Plain sentences as 4xx JSON for /api: engine ValueErrors, busy, and malformed requests.

    Passed to FastAPI(exception_handlers=...) so they are in place before the server starts.
    """
    def api_only(request: Request, status: int, message: str, default):
        if request.url.path.startswith("/api/"):
            return error(status, message)
        return JSONResponse(status_code=default, content={"detail": message})

    async def value_error(request: Request, exc: ValueError):
        return api_only(request, 422, str(exc), 500)

    async def busy(request: Request, exc: Busy):
        return api_only(request, 503, BUSY, 503)

    async def worker_stopped(request: Request, exc: WorkerStopped):
        return api_only(request, 503, str(exc), 503)

    async def http_error(request: Request, exc: HTTPException):
        key = "error" if request.url.path.startswith("/api/") else "detail"
        return JSONResponse(status_code=exc.status_code, content={key: exc.detail}, headers=exc.headers)

    async def invalid(request: Request, exc: RequestValidationError):
        if not request.url.path.startswith("/api/"):
            return JSONResponse(status_code=422, content={"detail": jsonable_encoder(exc.errors())})
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", [])[1:]) or "request"
        return error(422, f"{field}: {first.get('msg', 'is not valid')}.")

    return {ValueError: value_error, Busy: busy, WorkerStopped: worker_stopped, HTTPException: http_error,
            RequestValidationError: invalid}


def basic_auth(credentials: list[tuple[str, str]] | None):
    """With --auth on, the API asks for the same user and password as the UI (HTTP Basic)."""
    security = HTTPBasic(auto_error=False)

    def check(given: HTTPBasicCredentials | None = Depends(security)):
        if not credentials:
            return
        if given is None or not any(secrets.compare_digest(given.username, u) and
                                    secrets.compare_digest(given.password, p) for u, p in credentials):
            raise HTTPException(401, "Log in with the user and password the app was started with.",
                                headers={"WWW-Authenticate": "Basic"})
    return check


async def read_upload(upload: UploadFile) -> bytes:
    """Uploads are size-capped before they are decoded."""
    data = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"The upload is over {MAX_UPLOAD_BYTES // (1024 * 1024)} MB; send a smaller image.")
    if not data:
        raise ValueError("The uploaded image is empty; send a PNG, JPEG or WebP file.")
    return data


def b64_png(image, parameters: str = "") -> str:
    return base64.b64encode(pnginfo.png_bytes(image, parameters)).decode("ascii")


def router(manager, credentials: list[tuple[str, str]] | None = None) -> APIRouter:
    """The /api routes over one shared manager; every generation takes a slot at the manager's gate."""
    api = APIRouter(prefix="/api", tags=["generate"], dependencies=[Depends(basic_auth(credentials))])
    aging_defaults, gender_defaults = aging_preset().defaults, gender_preset().defaults

    @api.post("/txt2img", response_model=ImagesReply, summary="Text to image")
    def txt2img(body: Txt2ImgBody):
        with manager.gate.slot():
            defaults = manager.defaults()
            fields = body.model_dump()
            fields["width"] = fields["width"] or defaults.width
            fields["height"] = fields["height"] or defaults.height
            fields["control_units"] = units_from_json(fields.pop("controlnet"))
            result = run_job(text_to_image, manager, ImageRequest(**fields))
        return images_reply(result)

    @api.post("/img2img", response_model=ImagesReply, summary="Image to image")
    async def img2img(image: UploadFile = File(..., description="the picture to redraw"), prompt: str = Form(""),
                      negative_prompt: str = Form(""), strength: float = Form(0.75),
                      num_inference_steps: int = Form(20), guidance_scale: float = Form(7.0), seed: int = Form(-1),
                      batch_count: int = Form(1), sampler: str = Form(DEFAULT_SAMPLER),
                      size: int | None = Form(None, description="the longer side; default: the model's size"),
                      variation_seed: int = Form(-1), variation_strength: float = Form(0.0, ge=0, le=1),
                      controlnet: str = Form("", description=CONTROLNET_FORM_HELP)):
        data = await read_upload(image)
        side = size or manager.defaults().width
        req = ImageRequest(prompt=prompt, negative_prompt=negative_prompt, strength=strength,
                           num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, seed=seed,
                           batch_count=batch_count, sampler=sampler, width=side, height=side,
                           variation_seed=variation_seed, variation_strength=variation_strength,
                           control_units=units_from_form(controlnet))
        return images_reply(await _in_slot(manager, lambda: run_job(image_to_image, manager, req, data)))

    @api.post("/inpaint", response_model=ImagesReply, summary="Inpaint: redraw the painted area")
    async def inpaint_route(image: UploadFile = File(..., description="the photo"),
                            mask: UploadFile = File(..., description="white (or painted) where the photo changes"),
                            prompt: str = Form(""), negative_prompt: str = Form(""), strength: float = Form(0.75),
                            num_inference_steps: int = Form(20), guidance_scale: float = Form(7.0),
                            seed: int = Form(-1), batch_count: int = Form(1), sampler: str = Form(DEFAULT_SAMPLER),
                            size: int | None = Form(None, description="the longer side; default: the model's size"),
                            mask_blur: int = Form(4), only_masked: bool = Form(False),
                            only_masked_padding: int = Form(32),
                            controlnet: str = Form("", description=CONTROLNET_FORM_HELP)):
        data, mask_data = await read_upload(image), await read_upload(mask)
        side = size or manager.defaults().width
        req = ImageRequest(prompt=prompt, negative_prompt=negative_prompt, strength=strength,
                           num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, seed=seed,
                           batch_count=batch_count, sampler=sampler, width=side, height=side, mask_blur=mask_blur,
                           only_masked=only_masked, only_masked_padding=only_masked_padding,
                           control_units=units_from_form(controlnet))
        return images_reply(await _in_slot(manager, lambda: run_job(inpaint, manager, req, data, mask_data)))

    @api.post("/extras", response_model=ExtrasReply, summary="Upscale a picture (Extras)")
    async def extras(image: UploadFile = File(..., description="the picture to upscale"),
                     upscale: float = Form(2.0, description="factor, 1 to 8; ignored when width and height are given"),
                     upscaler: str = Form("Lanczos", description="Lanczos or an upscaler model's name (GET /docs "
                                                                 "lists none: see the Extras tab's menu)"),
                     width: int | None = Form(None, description="an exact width (with height) instead of upscale"),
                     height: int | None = Form(None, description="an exact height (with width)"),
                     restore_faces: str | None = Form(None, description="a face restorer's name (GFPGAN, "
                                                                         "RestoreFormer, CodeFormer), run first"),
                     visibility: float = Form(1.0, description="how much of the restored faces shows, 0 to 1")):
        from engine.extras.request import ExtrasRequest
        from engine.extras.run import open_image, run_extras

        data = await read_upload(image)
        to = (width, height) if width or height else None
        if to and not (width and height):
            raise ValueError("Give both width and height to upscale to a size, or neither to upscale by a factor.")
        req = ExtrasRequest(open_image(data), upscale_by=upscale, upscale_to=to, upscaler=upscaler,
                            restore_faces=restore_faces or None, visibility=visibility)
        req.size()  # refuse a bad factor or an oversize result before waiting for a slot
        result = await _in_slot(manager, lambda: run_extras(req, manager.weights_dir))
        return ExtrasReply(png_base64=b64_png(result.image, result.parameters), parameters=result.parameters,
                           width=result.image.width, height=result.image.height)

    @api.post("/aging", response_model=AgingReply, summary="Aging timelapse of a face photo")
    async def aging(request: Request, image: UploadFile = File(..., description="a face photo"),
                    ages: str = Form("20, 40, 60", description="'10, 20, 30' or '10-80/10'"),
                    subject: str = Form("person"), strength: float = Form(aging_defaults["strength"]),
                    num_inference_steps: int = Form(aging_defaults["num_inference_steps"]),
                    guidance_scale: float = Form(aging_defaults["guidance_scale"]), seed: int = Form(-1),
                    sampler: str = Form(aging_defaults["sampler"]),
                    transition_frames: int = Form(aging_defaults["transition_frames"]),
                    fps: float = Form(aging_defaults["fps"]), captions: bool = Form(True),
                    face: str | None = Form(None, description=FACE_HELP), padding: float = Form(0.5),
                    whole_photo: bool = Form(False), size: int | None = Form(None, ge=64, le=1024),
                    keep_identity: float = Form(0.0, description="identity adapter scale, 0 (off) to 1"),
                    fast_decode: bool = Form(False, description=FAST_DECODE_HELP),
                    restore_faces: str | None = Form(None, description=RESTORE_HELP),
                    visibility: float = Form(1.0, description=VISIBILITY_HELP)):
        data = await read_upload(image)
        req = AgingRequest(restore_faces=restore_faces or None, visibility=visibility,
                           fast_decode=fast_decode, ages=parse_ages(ages), subject=subject, strength=strength,
                           num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, seed=seed,
                           sampler=sampler, transition_frames=transition_frames, fps=fps, captions=captions,
                           padding=padding, whole_photo=whole_photo, size=size, keep_identity=keep_identity,
                           **face_fields(face))
        folder = next_path(task_dir("aging"), "timelapse", "")
        result = await _in_slot(manager, lambda: run_job(aging_timelapse, manager, req, data, folder))
        video_url = None
        if result.video:
            video_url = str(request.url_for("output_file", path=result.video.relative_to(output_root()).as_posix()))
        return AgingReply(images=[ApiImage(png_base64=b64_png(img), seed=result.seed, age=age)
                                  for age, img in result.keyframes],
                          notes=result.notes, video_url=video_url, seed=result.seed, replica=replica_of(result),
                          grid_png_base64=b64_png(result.grid) if result.grid else None,
                          identity_distance=result.identity, identity_note=result.identity_note)

    @api.post("/gender-swap", response_model=GenderReply, summary="Gender swap of a photo")
    async def gender(image: UploadFile = File(..., description="a photo with a face"),
                     direction: str = Form(..., description="woman or man"),
                     strength: float = Form(gender_defaults["strength"]), variants: int = Form(1),
                     num_inference_steps: int = Form(gender_defaults["num_inference_steps"]),
                     guidance_scale: float = Form(gender_defaults["guidance_scale"]), seed: int = Form(-1),
                     sampler: str = Form(gender_defaults["sampler"]),
                     face: str | None = Form(None, description=FACE_HELP), padding: float = Form(0.5),
                     whole_photo: bool = Form(False), size: int | None = Form(None, ge=64, le=1024),
                     keep_identity: float = Form(0.0, description="identity adapter scale, 0 (off) to 1"),
                     fast_decode: bool = Form(False, description=FAST_DECODE_HELP),
                     restore_faces: str | None = Form(None, description=RESTORE_HELP),
                     visibility: float = Form(1.0, description=VISIBILITY_HELP)):
        data = await read_upload(image)
        req = GenderRequest(restore_faces=restore_faces or None, visibility=visibility,
                            fast_decode=fast_decode, direction=direction, strength=strength, variants=variants,
                            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, seed=seed,
                            sampler=sampler, padding=padding, whole_photo=whole_photo, size=size,
                            keep_identity=keep_identity, **face_fields(face))
        result = await _in_slot(manager, lambda: run_job(gender_swap, manager, req, data))
        distances = [v.identity for v in result.variants] if result.identity_by_face else None
        return GenderReply(images=[ApiImage(png_base64=b64_png(v.image, v.parameters), seed=v.seed,
                                            parameters=v.parameters) for v in result.variants], notes=result.notes,
                           replica=replica_of(result),
                           identity_distance=distances, identity_note=result.identity_note)

    def train_reply(request: Request, job) -> TrainReply:
        state = job.snapshot()
        urls = [str(request.url_for("output_file", path=Path(p).relative_to(output_root()).as_posix()))
                for p in state.pop("samples")]
        lora, model, class_word = state.pop("lora"), state.pop("model"), state.pop("class_word")
        lora_tag = "" if job.full else f"<lora:{job.name}:1> "
        return TrainReply(**state, sample_urls=urls, lora=Path(lora).name if lora else None,
                          model=Path(model).name if model else None,
                          prompt=f"{lora_tag}photo of {job.name} {class_word}")

    def train_job(job_id: str):
        job = trainings(manager).get(job_id)
        if job is None:
            raise HTTPException(404, f"There is no training {job_id}; POST /api/train answers a training's id.")
        return job

    @api.post("/train", response_model=TrainReply, status_code=202, summary="Start training a LoRA from photos")
    async def train(request: Request,
                    photos: list[UploadFile] = File(..., description="3 to 50 photos, or one zip of them (same-name "
                                                                     ".txt files are captions)"),
                    name: str = Form(..., description="the trigger word and the LoRA's file name"),
                    class_word: str = Form("person", description="person, man, woman, dog, object, or free text"),
                    captions: str = Form("", description="optional lines 'photo name: caption'"),
                    steps: int | None = Form(None, description="default: 100 per photo, within 400-1500"),
                    rank: int = Form(16), alpha: float = Form(8.0),
                    resolution: int | None = Form(None, description="default: the model's size"),
                    text_encoder: bool = Form(False), flip: bool = Form(False), face_weighted: bool = Form(False),
                    prior_preservation: bool = Form(False), checkpoint_every: int = Form(100),
                    keep_checkpoints: int = Form(3), sample_every: int = Form(100), sample_steps: int = Form(20),
                    seed: int = Form(0), overwrite: bool = Form(False),
                    full: bool = Form(False, description="Full DreamBooth: a model file in weights/ (a big GPU)")):
        files = [(upload.filename or "photo", await read_upload(upload)) for upload in photos]
        folder = output_root() / "train" / "uploads" / uuid.uuid4().hex[:12]
        req = TrainRequest(images=str(gather_uploads(files, folder)), name=name, class_word=class_word.strip(),
                           steps=steps, rank=rank, alpha=alpha, resolution=resolution or manager.defaults().width,
                           text_encoder=text_encoder, flip=flip, face_weighted=face_weighted,
                           prior_preservation=prior_preservation, checkpoint_every=checkpoint_every,
                           keep_checkpoints=keep_checkpoints, sample_every=sample_every, sample_steps=sample_steps,
                           seed=seed, overwrite=overwrite, captions=parse_captions(captions))
        from starlette.concurrency import run_in_threadpool

        job = await run_in_threadpool(partial(trainings(manager).start, req, full=full))  # a refusal is a 422
        return train_reply(request, job)

    @api.get("/train/{job_id}", response_model=TrainReply, summary="A training's step, loss, ETA and samples")
    def train_status(job_id: str, request: Request):
        return train_reply(request, train_job(job_id))

    @api.post("/train/{job_id}/stop", response_model=TrainReply, summary="Stop a training, keeping a usable LoRA")
    def train_stop(job_id: str, request: Request):
        job = train_job(job_id)
        job.control.stop()
        return train_reply(request, job)

    @api.get("/files/{path:path}", name="output_file", summary="A file the app wrote (videos)")
    def output_file(path: str):
        root = output_root()
        target = (root / path).resolve()
        if root not in target.parents or not target.is_file():
            raise HTTPException(404, "No such output.")
        return FileResponse(target)

    posts = {route.path.removeprefix("/api") for route in api.routes if "POST" in getattr(route, "methods", ())}

    @api.api_route("/{job}", methods=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def wrong_method(job: str, request: Request):
        """A known endpoint asked with the wrong method answers 405 and says which method, as HTTP intends."""
        if f"/{job}" not in posts:
            raise HTTPException(404, f"There is no /api/{job}; see /docs for the endpoints.")
        return JSONResponse(status_code=405, headers={"Allow": "POST"},
                            content={"error": f"Send a POST request to /api/{job} (see /docs); {request.method} "
                                              "is not accepted here."})

    return api


def units_from_form(text: str):
    """A multipart form's `controlnet` field: the same JSON list as /api/txt2img's, sent as text."""
    if not text or not text.strip():
        return ()
    try:
        items = json.loads(text)
    except ValueError:
        raise ValueError("controlnet must be a JSON list of units, each with module, model and image.") from None
    return units_from_json(items)


def images_reply(result) -> ImagesReply:
    """An image run's PNGs (with their PNG info), seeds and notes."""
    return ImagesReply(images=[ApiImage(png_base64=b64_png(i.image, i.parameters), seed=i.seed, parameters=i.parameters,
                                        variation_seed=i.variation_seed) for i in result.images],
                       notes=result.notes, replica=replica_of(result))


async def _in_slot(manager, work):
    """Run blocking engine work in a thread, holding a generation slot."""
    from starlette.concurrency import run_in_threadpool

    def guarded():
        with manager.gate.slot():
            return work()
    return await run_in_threadpool(guarded)

