"""The LoRA and embedding picker shown under a prompt: lists what is in the folders and writes it into the prompt."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from engine.loaders import fewstep
from engine.loaders.embeddings import with_word
from engine.loaders.lora import with_tag
from engine.pipeline.models import REPO_ROOT

FEW_STEP_INFO = ("An LCM, TCD or Hyper-SD LoRA makes an image in about 4 steps at CFG 1: several times faster, "
                 "above all on CPU. Choosing one adds its tag and sets the sampler, steps and CFG.")


def shown_folder(folder, flag: str) -> str:
    """A folder as any visitor may see it: relative to the app folder, else named by its flag; never a server path."""
    try:
        return f"`{Path(folder).resolve().relative_to(REPO_ROOT)}`"
    except (TypeError, ValueError):
        return f"the {flag} folder"


def _where(manager) -> str:
    """A sentence on what was found and where to put more."""
    loras, embeds = manager.loras.names(), manager.embeddings.names()
    parts = [f"{len(loras)} LoRA{'s' if len(loras) != 1 else ''} in {shown_folder(manager.loras.folder, '--lora-dir')}",
             f"{len(embeds)} embedding{'s' if len(embeds) != 1 else ''} in "
             f"{shown_folder(manager.embeddings.folder, '--embeddings-dir')}"]
    hint = ("" if loras or embeds else " Put A1111's LoRA files (.safetensors) and embeddings (.pt, .safetensors) "
            "there, then press Refresh.")
    if not fewstep.find(manager.loras):
        hint += (" Few-step LoRAs (LCM, TCD, Hyper-SD) are available to download under 'Downloads' at the top of the "
                 "page.")
    return f"{' and '.join(parts)}. A LoRA is written as `<lora:NAME:WEIGHT>`, an embedding as its name.{hint}"


def network_picker(manager, prompt: gr.Textbox, task: str, sampler=None, steps=None, guidance=None,
                   loras: bool = True, fast_decode: gr.Checkbox | None = None) -> None:
    """Under a tab's prompt: choose a LoRA (at a weight) or an embedding and it is added to the prompt.

    With the tab's sampler, steps and CFG widgets given, a Few-step row offers the few-step LoRAs found.
    `loras=False` lists embeddings only (for jobs that can't take LoRAs). A `fast_decode` checkbox, when given, is
    ticked by choosing a few-step LoRA while TAESD is present (its decode would cost more than the steps).
    """
    few_step = sampler is not None and steps is not None and guidance is not None and loras

    # 1. handlers
    def add_lora(text, name, weight):
        return (with_tag(text, name, float(weight)) if name else text), gr.Dropdown(value=None)

    def add_embedding(text, name):
        return (with_word(text, name) if name else text), gr.Dropdown(value=None)

    def few_choices():
        return [few.label for few in fewstep.find(manager.loras)]

    def use_few_step(text, label):
        few = next((f for f in fewstep.find(manager.loras) if f.label == label), None)
        if few is None:
            return text, gr.update(), gr.update(), gr.update(), gr.update()
        decode = True if fast_decode is not None and manager.taesd_available() else gr.update()
        return fewstep.with_tag(text, few), few.sampler, few.num_inference_steps, few.guidance_scale, decode

    def refresh():
        few = few_choices()
        return (gr.Dropdown(choices=manager.loras.names(), value=None),
                gr.Dropdown(choices=manager.embeddings.names(), value=None),
                gr.Dropdown(choices=few, value=None, visible=few_step and bool(few)), _where(manager))

    # 2. layout
    with gr.Accordion("LoRAs and embeddings", open=False, elem_id=f"{task}-networks"):
        with gr.Row():
            lora = gr.Dropdown(manager.loras.names(), value=None, label="Add a LoRA", elem_id=f"{task}-lora",
                               visible=loras, scale=3)
            weight = gr.Slider(-2, 2, value=1, step=0.05, label="LoRA weight", visible=loras, scale=2)
            embedding = gr.Dropdown(manager.embeddings.names(), value=None, label="Add an embedding",
                                    elem_id=f"{task}-embedding", scale=3)
        found = few_choices() if few_step else []
        few = gr.Dropdown(found, value=None, label="Few-step mode", info=FEW_STEP_INFO, visible=bool(found),
                          elem_id=f"{task}-few-step")
        with gr.Row():
            note = gr.Markdown(_where(manager))
            again = gr.Button("Refresh", size="sm", scale=0, min_width=100, elem_id=f"{task}-networks-refresh")

    # 3. wiring (UI helpers only: the API takes the tags in its prompt)
    lora.input(add_lora, inputs=[prompt, lora, weight], outputs=[prompt, lora], api_name=False, queue=False)
    embedding.input(add_embedding, inputs=[prompt, embedding], outputs=[prompt, embedding], api_name=False,
                    queue=False)
    if few_step:
        decode_box = [fast_decode] if fast_decode is not None else []
        few.input(lambda *values: use_few_step(*values)[:4 + len(decode_box)], inputs=[prompt, few],
                  outputs=[prompt, sampler, steps, guidance, *decode_box], api_name=False, queue=False)
    again.click(refresh, outputs=[lora, embedding, few, note], api_name=False, queue=False)
    # a LoRA trained (or copied in) since the page opened is listed as soon as the menu is opened
    lora.focus(lambda: gr.Dropdown(choices=manager.loras.names()), outputs=lora, api_name=False, queue=False,
               show_progress="hidden")
