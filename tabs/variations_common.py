"""Variations in the image tabs: A1111's Variation seed and strength in a closed "Extra" group beside the seed, and
a Make variations button under the result that makes N similar images from that result's seed."""
from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Callable

import gradio as gr

from engine.files import pnginfo
from engine.image.request import MAX_BATCH, MAX_SEED
from tabs.common import local_path
from tabs.session import user_error

DEFAULT_COUNT, DEFAULT_STRENGTH = 4, 0.2  # Make variations: four images a small step from the result
REPLACED = ("seed", "batch_count", "variation_seed", "variation_strength")  # what Make variations sets itself


def variation_widgets(task: str) -> tuple[gr.Number, gr.Slider]:
    """The "Extra" group (closed): Variation seed and Variation strength, off at strength 0."""
    with gr.Accordion("Extra: variation seed", open=False, elem_id=f"{task}-variation"):
        with gr.Row():
            seed = gr.Number(value=-1, precision=0, label="Variation seed (-1 = random)", minimum=-1, maximum=MAX_SEED,
                             elem_id=f"{task}-variation-seed")
            strength = gr.Slider(0, 1, value=0, step=0.01, label="Variation strength (0 = off)",
                                 elem_id=f"{task}-variation-strength")
    return seed, strength


def variations_panel(task: str) -> SimpleNamespace:
    """Under the result: how many, how far, from which variation seed, and the Make variations button."""
    with gr.Group(elem_id=f"{task}-make-variations"):
        with gr.Row(equal_height=True):
            count = gr.Number(value=DEFAULT_COUNT, precision=0, minimum=1, maximum=MAX_BATCH, label="Variations",
                              min_width=90, elem_id=f"{task}-variations-count")
            strength = gr.Slider(0.01, 1, value=DEFAULT_STRENGTH, step=0.01, label="Variation strength",
                                 min_width=160, elem_id=f"{task}-variations-strength")
            start = gr.Number(value=-1, precision=0, minimum=-1, maximum=MAX_SEED, min_width=120,
                              label="First variation seed (-1 = random)", elem_id=f"{task}-variations-start")
        button = gr.Button("Make variations of the selected result", size="sm", elem_id=f"{task}-make-variations-run")
    return SimpleNamespace(count=count, strength=strength, start=start, button=button, selected=gr.State(None))


def result_seed(gallery_value, index: int | None) -> int:
    """The seed of the selected result (else the first), read from its PNG info."""
    items = gallery_value or []
    if not items:
        raise user_error("Generate an image first, then make variations of it.")
    path = local_path(items[index if index is not None and 0 <= index < len(items) else 0])
    fields = pnginfo.parse_parameters(pnginfo.read_parameters(path) or "")
    try:
        return int(fields["Seed"])
    except (KeyError, ValueError):
        raise user_error("This result carries no seed to make variations from; generate it again.") from None


def variations_of(run: Callable) -> Callable:
    """A Make variations handler over a tab's run handler: the run's own inputs, but the result's seed, N images and
    variation seeds counting up from the given start, at the given strength."""
    names = [name for name in inspect.signature(run).parameters if name != "progress"]
    own = [name for name in names if name not in (*REPLACED, "control")]
    wanted = [*own, "gallery", "selected", "batch_count", "variation_seed", "variation_strength", "control"]
    missing = set(REPLACED) - set(names)
    if missing:
        raise RuntimeError(f"{run.__name__} lacks {sorted(missing)}, which Make variations sets")
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    signature = inspect.Signature([*(inspect.Parameter(name, kind) for name in wanted),
                                   inspect.Parameter("progress", kind, default=gr.Progress())])

    def make_variations(*args, **kwargs):
        given = signature.bind(*args, **kwargs).arguments
        seed = result_seed(given.pop("gallery"), given.pop("selected"))
        yield from run(**given, seed=seed)

    make_variations.__signature__ = signature
    return make_variations


def wire_selection(panel: SimpleNamespace, gallery: gr.Gallery) -> None:
    """Remember which result is selected; a new set of results selects the first again."""
    def remember(evt: gr.SelectData):
        return evt.index

    gallery.select(remember, inputs=None, outputs=panel.selected, api_name=False)
    gallery.change(lambda: None, inputs=None, outputs=panel.selected, api_name=False)
