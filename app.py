"""Diffusion Studio: flags -> PipelineManager -> one Gradio Blocks app built from the tabs, plus a REST API.

`python app.py` runs it. `uvicorn app:app` serves `app`, a FastAPI app with the REST API under /api (docs at
/docs) and the UI mounted at /; `demo` is the Blocks. Both are built on first access from the STUDIO_*
environment variables, so importing this module has no side effects.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import gradio as gr

from engine.files.outputs import delete_older_than, output_root
from engine.pipeline.manager import PipelineManager, RuntimeOptions
from engine.pipeline.models import DEFAULT_HUB_MODEL, TINY, WEIGHTS_DIR, model_defaults
from engine.text.prompts import MAX_TOKENS
from engine.text.styles import use_styles
from tabs import (
    aging,
    animate,
    downloads,
    dream,
    extras,
    gender_swap,
    img2img,
    inpaint,
    latent_walk,
    send,
    text2video,
    train,
    txt2img,
)
from tabs.common import refresh_fast
from tabs.gpu import spaces_module, zero_gpu
from tabs.running import QUEUE_ID
from tabs.session import user_errors

TITLE = "Diffusion Studio"
ZEROGPU_NOTE = ("On ZeroGPU the model is loaded once at start-up, so the menu holds only it; set STUDIO_MODEL in the "
                "Space's settings to change it.")
log = logging.getLogger("diffusion_studio")
CSS = """
.ds-header h1 {margin-bottom: 0}
.ds-status {font-size: 0.9em}
/* the run button fills its column, as in A1111; Stop shows under it only while a run goes */
.ds-run {min-height: 72px}
/* one progress bar per tab, drawn by us (Gradio's overlay is hidden so the live preview stays visible) */
.ds-progress .ds-bar {height: 10px; border-radius: 5px; background: var(--neutral-200); overflow: hidden}
.ds-progress .ds-fill {height: 100%; background: var(--color-accent); transition: width 0.4s linear}
.ds-progress .ds-done .ds-fill {background: var(--neutral-400)}
.ds-progress .ds-bar-text {font-size: 0.9em; margin-top: 4px; font-variant-numeric: tabular-nums}
.ds-progress .ds-bar-text.ds-failed {color: var(--error-text-color, #b91c1c); font-weight: 600}
.block.ds-progress > [data-testid="status-tracker"] {display: none !important}
/* results are shown whole: a lone result fits inside its gallery's height, letterboxed, never cropped */
.ds-output .thumbnail-item {max-height: 360px}
.ds-gallery .thumbnail-item img {object-fit: contain}
/* a before/after slider shows both pictures whole within its height (Gradio's are as tall as they are wide) */
.slider-wrap.limit_height img {height: 100% !important}
/* a gallery's columns share its width (Gradio's are at least 100 px, so six of them overflow a half-width column) */
.ds-gallery .grid-container {grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr)) !important}
@media (max-width: 640px) {
  .ds-frames .grid-container {grid-template-columns: repeat(3, minmax(0, 1fr)) !important}
  /* phones: all tabs wrap onto a few compact rows */
  [role="tablist"] button[role="tab"] {padding: 4px 8px; font-size: 0.9em}
}
.ds-faces-note p, .ds-faces-note ol {margin: 0}
"""


def build_demo(manager: PipelineManager, analytics: bool = False) -> gr.Blocks:
    """The whole app: a model bar over one tab per feature, all served by one manager."""
    pinned = getattr(manager, "pinned", False)  # ZeroGPU: the start-up model is the only one

    def status():
        return manager.status() + (f" {ZEROGPU_NOTE}" if pinned else "")

    def select_model(name):
        with user_errors():
            if pinned and name != manager.model_name:
                raise ValueError(f"On ZeroGPU only the start-up model can be used ({manager.model_name}); set "
                                 "STUDIO_MODEL in the Space's settings to choose another.")
            manager.select(name)
        return status()

    # Gradio's usage analytics stay off unless asked for: the app edits faces, so nothing leaves unasked
    with gr.Blocks(title=TITLE, analytics_enabled=analytics) as demo:
        with gr.Row(elem_classes=["ds-header"]):
            gr.Markdown(f"# {TITLE}\nStable Diffusion photo and video work.")
            model = gr.Dropdown([manager.model_name] if pinned else manager.choices(), value=manager.model_name,
                                label="Model", allow_custom_value=False, elem_id="model-select")
        status_line = gr.Markdown(status(), elem_classes=["ds-status"], elem_id="model-status")
        downloads.build(manager)
        with gr.Tabs(overflow_behavior="wrap") as tabs:  # every tab in reach on a phone, no "⋯" menu
            aging.build(manager)
            gender_swap.build(manager)
            t2i = txt2img.build(manager)
            i2i = img2img.build(manager)
            inp = inpaint.build(manager)
            dreams = dream.build(manager)
            walks = latent_walk.build(manager)
            animations = animate.build(manager)
            text2video.build(manager)
            trained = train.build(manager)
            extras.build(manager)
        send.wire(tabs, [t2i, i2i, inp], i2i, inp)
        send.wire_try(tabs, trained, t2i)
        sizes = [*t2i.sizes, *i2i.sizes, *inp.sizes, *dreams.sizes, *walks.sizes, *animations.sizes, *trained.sizes]
        model.change(select_model, inputs=model, outputs=status_line, api_name="select_model",
                     concurrency_id=QUEUE_ID)
        model.change(follow_model_size, inputs=[model, *sizes], outputs=sizes, api_name=False, queue=False,
                     show_progress="hidden")
        demo.load(status, inputs=None, outputs=status_line, api_name=False, queue=False)
        fasts = [t2i.fast, i2i.fast, inp.fast, dreams.fast, walks.fast, animations.fast]
        fewstep_ok = [True, True, True, False, False, False]  # the image tabs turn Fast into Few-step on OpenVINO
        demo.load(lambda: refresh_fast(manager, fewstep_ok), inputs=None, outputs=fasts, api_name=False,
                  queue=False, show_progress="hidden")
        status_line.change(lambda: refresh_fast(manager, fewstep_ok), inputs=None, outputs=fasts, api_name=False,
                           queue=False, show_progress="hidden")  # a new model may run on another back end
    demo.queue(max_size=manager.options.queue_size, default_concurrency_limit=manager.options.concurrency)
    return demo


def follow_model_size(name, *values):
    """Sizes still at a model's default move to the new model's (128 px for tiny, 512 otherwise); sizes the user
    chose stay."""
    untouched = {model_defaults(other).width for other in (TINY, DEFAULT_HUB_MODEL)}
    size = model_defaults(name).width
    return [size if value in untouched else gr.skip() for value in values]


def env(name: str, default=None):
    return os.environ.get(f"STUDIO_{name}", default)


def env_flag(name: str) -> bool:
    return env(name, "").lower() in ("1", "true", "yes", "on")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Every flag also reads a STUDIO_<NAME> environment variable, for `uvicorn app:app` and Spaces."""
    p = argparse.ArgumentParser(description="Run the Diffusion Studio web app.")
    p.add_argument("--model", default=env("MODEL"),
                   help="hub id, diffusers folder, checkpoint in weights/, or 'tiny' (default: a Realistic "
                        "Vision file in weights/, else the hub's Realistic Vision V6.0 B1)")
    p.add_argument("--weights-dir", default=env("WEIGHTS_DIR", str(WEIGHTS_DIR)),
                   help="folder of single-file checkpoints listed in the model menu")
    p.add_argument("--device", default=env("DEVICE", "auto"), help="auto, cpu, cuda or mps")
    p.add_argument("--dtype", default=env("DTYPE", "auto"), help="auto, float32, bfloat16 or float16")
    p.add_argument("--host", default=env("HOST", os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")),
                   help="address to listen on (0.0.0.0 for a LAN, a container or Spaces)")
    p.add_argument("--port", type=int, default=int(env("PORT", os.environ.get("GRADIO_SERVER_PORT", 7860))))
    p.add_argument("--root-path", default=env("ROOT_PATH"), help="URL prefix when served behind a reverse proxy")
    p.add_argument("--share", action="store_true", default=env_flag("SHARE"), help="open a public share link")
    p.add_argument("--auth", default=env("AUTH"), help="user:password required to use the app (and the API)")
    p.add_argument("--share-without-auth", action="store_true", default=env_flag("SHARE_WITHOUT_AUTH"),
                   help="allow --share with no password (anyone with the link can use your machine)")
    p.add_argument("--concurrency", type=int, default=int(env("CONCURRENCY", 1)),
                   help="generations running at once")
    p.add_argument("--queue-size", type=int, default=int(env("QUEUE_SIZE", 20)),
                   help="requests that may wait; more are told the app is busy")
    p.add_argument("--max-upload-mb", type=int, default=int(env("MAX_UPLOAD_MB", 20)), help="upload size cap")
    p.add_argument("--max-prompt-tokens", type=int, default=int(env("MAX_PROMPT_TOKENS", MAX_TOKENS)),
                   help=f"the longest prompt or negative prompt accepted, in CLIP tokens (default {MAX_TOKENS})")
    p.add_argument("--keep-outputs-hours", type=float, default=float(env("KEEP_OUTPUTS_HOURS", 168)),
                   help="delete outputs older than this at start-up (0 keeps everything)")
    p.add_argument("--cpu-offload", action="store_true", default=env_flag("CPU_OFFLOAD"),
                   help="keep idle model parts in RAM (CUDA)")
    p.add_argument("--vae-tiling", action="store_true", default=env_flag("VAE_TILING"),
                   help="decode large images in tiles")
    p.add_argument("--compile", action="store_true", default=env_flag("COMPILE"),
                   help="torch.compile the UNet: ~1.18x a step on CPU after a minute's warm-up per image size")
    p.add_argument("--attention-slicing", action="store_true", default=env_flag("ATTENTION_SLICING"),
                   help="slice attention to save memory")
    p.add_argument("--backend", default=env("BACKEND", "auto"),
                   help="auto, torch or openvino: where the UNet runs (auto: OpenVINO on x86 CPUs where installed, "
                        "PyTorch on CUDA, MPS, ARM and for small models)")
    p.add_argument("--precision", default=env("PRECISION", "auto"),
                   help="auto, bf16 or int8: int8 quantises OpenVINO's UNet with NNCF (8-bit weights, 8-bit convolutions; "
                        "calibrated once per model, cached on disk); auto is bf16")
    p.add_argument("--styles", default=env("STYLES"),
                   help="an A1111 styles.csv (default: styles.csv in the app folder, else presets/styles.csv)")
    p.add_argument("--ray", action="store_true", default=env_flag("RAY"),
                   help="run the engine on Ray Serve replicas (pip install \"ray[serve]\"); the UI and REST API "
                        "stay in this process")
    p.add_argument("--ray-address", default=env("RAY_ADDRESS"),
                   help="Ray cluster to use with --ray ('auto' or HEAD:6379; default: start a local Ray)")
    p.add_argument("--ray-replicas", type=int, default=int(env("RAY_REPLICAS", 1)),
                   help="engine replicas with --ray (each holds one copy of the weights; one per GPU)")
    p.add_argument("--lora-dir", default=env("LORA_DIR"),
                   help="folder of LoRAs for <lora:NAME:WEIGHT> tags in prompts (default: weights/Lora)")
    p.add_argument("--embeddings-dir", default=env("EMBEDDINGS_DIR"),
                   help="folder of textual-inversion embeddings, used by file name in prompts (default: weights/embeddings)")
    p.add_argument("--max-sessions", type=int, default=int(env("MAX_SESSIONS", 200)),
                   help="browser and API sessions whose state is kept (about 1 MB each); the least recent go first")
    p.add_argument("--analytics", action="store_true", default=env_flag("ANALYTICS"),
                   help="let Gradio send its usage analytics (off by default)")
    return p.parse_args(argv)


def credentials(args: argparse.Namespace) -> list[tuple[str, str]] | None:
    """--auth user:password, or refuse a public link without one unless the user insists."""
    if args.auth:
        user, sep, password = args.auth.partition(":")
        if not sep or not user or not password:
            raise ValueError("--auth must look like user:password.")
        return [(user, password)]
    if args.share and not args.share_without_auth:
        raise ValueError("--share makes the app public: add --auth user:password (or STUDIO_AUTH), "
                         "or --share-without-auth if you really want anyone with the link to use it.")
    return None


def manager_from(args: argparse.Namespace) -> PipelineManager:
    device = "cuda" if args.device == "auto" and zero_gpu() else args.device  # ZeroGPU: cuda even before a GPU is held
    options = RuntimeOptions(device=device, dtype=args.dtype, cpu_offload=args.cpu_offload,
                             vae_tiling=args.vae_tiling, attention_slicing=args.attention_slicing,
                             concurrency=args.concurrency, queue_size=args.queue_size,
                             compile_unet=args.compile, backend=args.backend,
                             max_prompt_tokens=args.max_prompt_tokens, precision=args.precision)
    folders = {key: Path(getattr(args, key)) for key in ("lora_dir", "embeddings_dir") if getattr(args, key, None)}
    return PipelineManager(args.model, options, weights_dir=Path(args.weights_dir), **folders)


def serving_kwargs(args: argparse.Namespace, auth) -> dict:
    """What launch() and mount_gradio_app() share: auth, upload cap, and files served only from outputs."""
    return dict(auth=auth, root_path=args.root_path, max_file_size=f"{args.max_upload_mb}mb",
                allowed_paths=[str(output_root())])


def api_app_kwargs(manager: PipelineManager, auth) -> dict:
    """The FastAPI settings that put the REST API under /api and its documentation at /docs."""
    from starlette.middleware import Middleware

    from server import rest
    from server.busy import BusyMessage
    from server.gradio_routes import GradioRoutes

    return {"title": TITLE, "docs_url": "/docs", "routes": rest.router(manager, auth).routes,
            "exception_handlers": rest.exception_handlers(), "middleware": [Middleware(BusyMessage), Middleware(GradioRoutes)]}


def log_to_console() -> None:
    """The app's own log lines (user errors, a model that can't load) on stderr, one line each."""
    logger = logging.getLogger("diffusion_studio")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def prepare(args: argparse.Namespace):
    """Checks and housekeeping common to both ways of serving."""
    from engine.cli import quiet_libraries
    from server import rest

    quiet_libraries()
    log_to_console()
    auth = credentials(args)
    if args.max_sessions < 1:
        raise ValueError("--max-sessions must be at least 1.")
    rest.MAX_UPLOAD_BYTES = args.max_upload_mb * 1024 * 1024
    if args.keep_outputs_hours > 0:
        delete_older_than(args.keep_outputs_hours * 3600)
    use_styles(args.styles)  # a bad styles file is reported now, in one sentence
    if args.ray:
        args.concurrency = max(args.concurrency, args.ray_replicas)  # one run per replica at once
    manager = manager_from(args)
    if args.ray:
        connect_ray(args, manager)
    elif zero_gpu():
        load_for_zero_gpu(manager)
    else:
        manager.preload()  # the page opens at once; the weights load meanwhile
    return auth, manager


def load_for_zero_gpu(manager: PipelineManager) -> None:
    """ZeroGPU's pattern: load the model now, in this thread, onto `cuda`, before the app starts. ZeroGPU packs
    what is on `cuda` at start-up and hands it to each GPU call, so a model loaded later could not be used: the
    menu keeps to this one. A model that fails to load is reported in the status line, as elsewhere."""
    spaces = spaces_module()
    if spaces is not None and hasattr(spaces, "disable_gradio_auto_wrap"):
        spaces.disable_gradio_auto_wrap()  # each handler is wrapped with its own duration; long videos must not be
    manager.pinned = True
    try:
        manager.base()
    except ValueError as exc:
        log.warning("The model %s could not be loaded: %s", manager.model_name, exc)
        return
    load_local_extras(manager)


def load_local_extras(manager: PipelineManager) -> None:
    """The Keep identity adapter and the motion adapter, when their files are already here (weights/ or the hub
    cache), also go to `cuda` at start-up; nothing is downloaded for a tab nobody may open."""
    from engine.video.motion import adapter as motion_adapter

    try:
        if manager.identity_available():
            manager.identity_adapter()
        source = motion_adapter.resolve_adapter(None, manager.model_name, manager.weights_dir)
        if source.kind != "hub" or motion_adapter.hub_cached(source.location):
            motion_adapter.shared_adapter(manager.base().unet, source, manager.dtype)
    except (ValueError, OSError) as exc:  # the tab that needs it says why when it is used
        log.warning("An adapter could not be loaded at start-up: %s", exc)


def connect_ray(args: argparse.Namespace, manager: PipelineManager) -> None:
    """With --ray, jobs run on Ray Serve replicas; this process keeps no weights and only fronts them."""
    from engine.backends.ray import RayRunner
    from server.ray_app import serve_engine

    if args.ray_replicas < 1:
        raise ValueError("--ray-replicas must be at least 1.")
    handle = serve_engine(args.ray_address, manager.model_name, manager.options, args.ray_replicas,
                          weights_dir=args.weights_dir, queue_size=args.queue_size,
                          folders={"lora_dir": args.lora_dir, "embeddings_dir": args.embeddings_dir})
    manager.runner = RayRunner(handle)


def launch(args: argparse.Namespace, block: bool = True) -> gr.Blocks:
    """Serve the app with Gradio's own server (the only way to a share link), REST API included."""
    auth, manager = prepare(args)
    if args.share and not auth:
        print("warning: --share-without-auth: anyone with the link can use this machine.", file=sys.stderr)
    demo = build_demo(manager, analytics=args.analytics)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, show_error=True, css=CSS,
                app_kwargs=api_app_kwargs(manager, auth), prevent_thread_lock=not block, quiet=not block,
                state_session_capacity=args.max_sessions, **serving_kwargs(args, auth))
    return demo


def main(argv: list[str] | None = None) -> int:
    try:
        launch(parse_args(argv))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def build_app(args: argparse.Namespace | None = None):
    """The FastAPI app for `uvicorn app:app`: REST API, docs, and the UI at /."""
    from fastapi import FastAPI

    args = args or parse_args([])
    auth, manager = prepare(args)
    demo = build_demo(manager, analytics=args.analytics)
    demo.state_session_capacity = args.max_sessions  # mount_gradio_app takes it from the Blocks
    api = FastAPI(**api_app_kwargs(manager, auth))
    return demo, gr.mount_gradio_app(api, demo, path="/", css=CSS, show_error=True, **serving_kwargs(args, auth))


def __getattr__(name: str):
    """Build `demo` and `app` on first access, so importing this module has no side effects."""
    if name not in ("demo", "app"):
        raise AttributeError(name)
    global demo, app
    demo, app = build_app()
    return globals()[name]


if __name__ == "__main__":
    sys.exit(main())
