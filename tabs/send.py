"""The "send to image to image / inpaint" buttons that carry a result and its prompt to another tab, and Train's
"Try it", which carries the new LoRA's prompt to Text to image."""
from __future__ import annotations

import gradio as gr

from tabs.common import local_path
from tabs.session import user_error


def pick(gallery_value, index: int | None) -> str:
    """The selected gallery image, or the first one."""
    items = gallery_value or []
    if not items:
        raise user_error("Generate an image first, then send it.")
    index = index if index is not None and 0 <= index < len(items) else 0
    return local_path(items[index])


def wire(tabs: gr.Tabs, sources: list, img2img, inpaint) -> None:
    """Connect every source tab's send buttons to the image-to-image and inpaint inputs."""
    def to_img2img(gallery_value, index, prompt, negative):
        return pick(gallery_value, index), prompt, negative, gr.Tabs(selected="img2img")

    def to_inpaint(gallery_value, index, prompt, negative):
        path = pick(gallery_value, index)
        editor = {"background": path, "layers": [], "composite": path}
        return editor, prompt, negative, gr.Tabs(selected="inpaint")

    def remember(evt: gr.SelectData):
        return evt.index

    for source in sources:
        selected = gr.State(None)
        source.gallery.select(remember, inputs=None, outputs=selected, api_name=False)
        source.gallery.change(lambda: None, inputs=None, outputs=selected, api_name=False)
        common = [source.gallery, selected, source.prompt, source.negative]
        source.to_img2img.click(to_img2img, inputs=common,
                                outputs=[img2img.image, img2img.prompt, img2img.negative, tabs], api_name=False)
        source.to_inpaint.click(to_inpaint, inputs=common,
                                outputs=[inpaint.editor, inpaint.prompt, inpaint.negative, tabs], api_name=False)


def wire_try(tabs: gr.Tabs, train, txt2img) -> None:
    """Train's Try it: `<lora:NAME:1> photo of NAME CLASS` into Text to image's prompt, and that tab opened."""
    def to_txt2img(prompt):
        if not prompt:
            raise user_error("Train a LoRA first, then try it.")
        return prompt, gr.Tabs(selected="txt2img")

    train.try_it.click(to_txt2img, inputs=train.prompt, outputs=[txt2img.prompt, tabs], api_name=False)
