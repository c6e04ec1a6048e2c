"""Diffusion Studio: flags -> PipelineManager -> one Gradio Blocks app built from the tabs.

`python app.py` runs it; `demo` (the Blocks) and `app` (a FastAPI app) are built on first access for
`uvicorn app:app`, configured from the STUDIO_* environment variables.
"""
from __future__ import annotations

import argparse
import os
import sys

import gradio as gr

from engine.manager import PipelineManager, RuntimeOptions
from tabs import aging, dream, gender_swap, img2img, inpaint, latent_walk, send, txt2img
from tabs.common import QUEUE_ID, user_errors

TITLE = "Diffusion Studio"
CSS = """
.ds-header h1 {margin-bottom: 0}
.ds-status {font-size: 0.9em}
"""
QUEUE_MAX_SIZE = 20


def build_demo(manager: PipelineManager) -> gr.Blocks:
    """The whole app: a model bar over one tab per feature, all served by one manager."""
    def select_model(name):
        with user_errors():
            manager.select(name)
        return manager.status()

    with gr.Blocks(title=TITLE) as demo:
        with gr.Row(elem_classes=["ds-header"]):
            gr.Markdown(f"# {TITLE}\nStable Diffusion photo and video work.")
            model = gr.Dropdown(manager.choices(), value=manager.model_name, label="Model",
                                allow_custom_value=False, elem_id="model-select")
        status = gr.Markdown(manager.status(), elem_classes=["ds-status"], elem_id="model-status")
        with gr.Tabs() as tabs:
            aging.build(manager)
            gender_swap.build(manager)
            t2i = txt2img.build(manager)
            i2i = img2img.build(manager)
            inp = inpaint.build(manager)
            dream.build(manager)
            latent_walk.build(manager)
        send.wire(tabs, [t2i, i2i, inp], i2i, inp)
        model.change(select_model, inputs=model, outputs=status, api_name="select_model",
                     concurrency_id=QUEUE_ID)
        demo.load(manager.status, inputs=None, outputs=status, api_name=False, queue=False)
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=1)
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run the Diffusion Studio web app.")
    parser.add_argument("--model", default=os.environ.get("STUDIO_MODEL"),
                        help="hub id, diffusers folder, checkpoint in weights/, or 'tiny' (default: a "
                             "Realistic Vision file in weights/, else the hub's Realistic Vision V6.0 B1)")
    parser.add_argument("--device", default=os.environ.get("STUDIO_DEVICE", "auto"), help="auto, cpu, cuda or mps")
    parser.add_argument("--dtype", default=os.environ.get("STUDIO_DTYPE", "auto"),
                        help="auto, float32, bfloat16 or float16")
    parser.add_argument("--host", default=os.environ.get("STUDIO_HOST", "127.0.0.1"), help="address to listen on")
    parser.add_argument("--port", type=int, default=int(os.environ.get("STUDIO_PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="open a public Gradio share link")
    parser.add_argument("--cpu-offload", action="store_true", help="keep idle model parts in RAM (CUDA)")
    parser.add_argument("--vae-tiling", action="store_true", help="decode large images in tiles")
    parser.add_argument("--attention-slicing", action="store_true", help="slice attention to save memory")
    return parser.parse_args(argv)


def manager_from(args: argparse.Namespace) -> PipelineManager:
    options = RuntimeOptions(device=args.device, dtype=args.dtype, cpu_offload=args.cpu_offload,
                             vae_tiling=args.vae_tiling, attention_slicing=args.attention_slicing)
    return PipelineManager(args.model, options)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        manager = manager_from(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    demo = build_demo(manager)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, show_error=True, css=CSS)
    return 0


def __getattr__(name: str):
    """Build `demo` and `app` on first access, so importing this module has no side effects."""
    if name not in ("demo", "app"):
        raise AttributeError(name)
    global demo, app
    demo = build_demo(manager_from(parse_args([])))
    app = gr.mount_gradio_app(__import__("fastapi").FastAPI(title=TITLE), demo, path="/", css=CSS)
    return globals()[name]


if __name__ == "__main__":
    sys.exit(main())
