"""The X/Y/Z plot panel that Text to image and Image to image share: axis pickers, the cell count and estimated
time before the run, and the run that fills the tab's gallery with the grids and then every cell."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import gradio as gr

from engine.files import pnginfo
from engine.files.outputs import next_path, task_dir
from engine.xyz import (
    MAX_CELLS,
    PlotRequest,
    PlotResult,
    axis_names,
    cell_images,
    default_seconds_per_step,
    describe_plan,
    plan_plot,
    write_sweep_video,
)
from engine.xyz.axes import PLOT_GUIDANCE
from tabs.running import step_of, stream
from tabs.session import user_errors

NOTHING = "Nothing"
NO_VIDEO = "No video"
AXIS_INPUTS = ["x_type", "x_values", "y_type", "y_values", "z_type", "z_values", "video_axis"]
HELP = (f"Up to three axes, each a setting and its values: a list `5, 7.5, 10`, a range with a step `1-20 (+5)` or "
        f"with a count `1-20 [4]`; sampler names for Sampler; for Prompt S/R the first value is the text in the "
        f"prompt that each value replaces. Every cell uses the seed above unless Seed is an axis. At most "
        f"{MAX_CELLS} cells. CFG Scale takes {PLOT_GUIDANCE[0]:g} to {PLOT_GUIDANCE[1]:g} here: below 1 the "
        f"guidance formula still applies (0 ignores the prompt, negative values push away from it).")


@dataclass
class PlotPanel:
    """The panel's widgets (built inside a tab's layout) and the per-session pace used for estimates."""

    widgets: dict  # AXIS_INPUTS name -> component
    plan: gr.Markdown
    run: gr.Button
    video: gr.Video
    pace: gr.State  # seconds per 512x512 step measured on this session's last plot, or None
    accordion: gr.Accordion


def plot_panel(task: str, defaults: tuple[str, str] = ("CFG Scale", "3, 7, 11")) -> PlotPanel:
    """The closed "X/Y/Z plot" accordion: three axis rows, the video choice, the plan line and its run button."""
    names = [NOTHING, *axis_names(task)]
    widgets: dict = {}
    with gr.Accordion("X/Y/Z plot", open=False, elem_id=f"{task}-xyz") as accordion:
        note = "" if task == "txt2img" else (" Here Width and Height both set the longer side (the aspect ratio is "
                                              "kept), and Denoising is the denoising strength.")
        gr.Markdown(HELP + note, elem_classes=["ds-xyz-help"])
        for slot, (kind, values) in zip("xyz", (defaults, (NOTHING, ""), (NOTHING, ""))):
            with gr.Row(equal_height=True):
                widgets[f"{slot}_type"] = gr.Dropdown(names, value=kind, label=f"{slot.upper()} type", scale=1,
                                                      min_width=140, elem_id=f"{task}-xyz-{slot}-type")
                widgets[f"{slot}_values"] = gr.Textbox(value=values, label=f"{slot.upper()} values", scale=3,
                                                       elem_id=f"{task}-xyz-{slot}-values")
        widgets["video_axis"] = gr.Radio([NO_VIDEO, "X", "Y", "Z"], value=NO_VIDEO,
                                         label="Also render one axis as a video (one captioned frame per value)")
        plan = gr.Markdown(elem_id=f"{task}-xyz-plan", elem_classes=["ds-xyz-plan"])
        run = gr.Button("Run X/Y/Z plot", variant="primary", elem_id=f"{task}-xyz-run")
        video = gr.Video(label="Sweep video", visible=False, height=320, interactive=False,
                         elem_id=f"{task}-xyz-video")
    return PlotPanel(widgets, plan, run, video, gr.State(None), accordion)


def plot_request(base, x_type, x_values, y_type, y_values, z_type, z_values, video_axis) -> PlotRequest:
    """Widget values to the engine's request: each axis becomes "Name: values"."""
    def spec(kind, values):
        return "" if not kind or kind == NOTHING else f"{kind}: {values or ''}"

    return PlotRequest(base, x=spec(x_type, x_values), y=spec(y_type, y_values), z=spec(z_type, z_values),
                       video="" if not video_axis or video_axis == NO_VIDEO else video_axis)


def plan_line(manager, req: PlotRequest, task: str, pace: float | None) -> str:
    """The cell count and estimated time, or the sentence saying what is wrong, before anything runs."""
    try:
        plan = plan_plot(req, task, manager.options.max_prompt_tokens)
    except ValueError as exc:
        return f"⚠️ {exc}"
    return describe_plan(plan, pace or default_seconds_per_step(manager), measured=pace is not None)


def describe_cell(update):
    """Progress text: cell i of n, step s of t."""
    return update.fraction, f"Cell {update.image_index + 1}/{update.batch_count}, {step_of(update)}", update.preview


def plot_outputs(manager, job: Callable, req: PlotRequest, task: str, control, progress, pace) -> Iterator[tuple]:
    """The plot's run: previews while it goes, then the grids and cells (saved with PNG info), the video,
    the plan line with the measured pace, and the pace itself.

    Outputs: gallery, preview, info, parameters, sweep video, plan line, pace.
    """
    for preview, result in stream(job, control, progress, manager.gate, describe_cell):
        if result is None:
            yield (gr.skip(), preview, *(gr.skip(),) * 5)
            continue
        with user_errors():
            gallery, video_path = save_plot(result, task)
        pace = result.seconds_per_step or pace
        yield (gallery, None, plot_info(result), result.grids[0].parameters if result.grids else "",
               video_path,
               describe_plan(result.plan, pace or default_seconds_per_step(manager), measured=pace is not None),
               pace)


def save_plot(result: PlotResult, task: str) -> tuple[list[tuple[str, str]], str | None]:
    """Grids, then each cell, as PNGs with their parameters; the sweep video as MP4. Returns gallery items."""
    folder = task_dir(f"{task}-xyz")
    items = []
    for grid in result.grids:
        path = next_path(folder, grid.name, ".png")
        pnginfo.save_png(grid.image, path, grid.parameters)
        items.append((str(path), "Grid" + (f" · {grid.name.split('-')[-1].upper()}" if "-z" in grid.name else "")))
    labels = {tuple(c.position): ", ".join(c.labels) for c in result.plan.cells}
    made = [c for c, m in zip(result.plan.cells, result.cells) if m is not None]
    for cell, item in zip(made, cell_images(result)):
        path = next_path(folder, item.name, ".png")
        pnginfo.save_png(item.image, path, item.parameters)
        items.append((str(path), labels[cell.position]))
    video_path = None
    if result.frames:
        video_path = str(write_sweep_video(result, next_path(folder, "sweep", ".mp4")))
    return items, video_path


def plot_info(result: PlotResult) -> str:
    made = sum(c is not None for c in result.cells)
    seeds = sorted({c.request.seed for c in result.plan.cells})
    seed_text = f"Seed used: {seeds[0]}" if len(seeds) == 1 else f"Seeds used: {', '.join(map(str, seeds))}"
    lines = [f"X/Y/Z plot: {made} of {len(result.cells)} cells, {len(result.grids)} grid"
             f"{'s' if len(result.grids) != 1 else ''}" + (f", a {len(result.frames)}-frame video" if result.frames
                                                          else "") + ".", seed_text, *result.notes]
    return "\n\n".join(lines)


def wire_plan(panel: PlotPanel, fn: Callable, inputs: list, api_name: str) -> None:
    """Recount the cells and the estimate whenever an axis changes, and when the panel opens.

    Also: the Sweep video box shows only when there is a video in it.
    """
    panel.video.change(lambda v: gr.Video(visible=bool(v)), inputs=panel.video, outputs=panel.video,
                       api_name=False, queue=False, show_progress="hidden")
    triggers = [panel.accordion.expand, *(w.change for w in panel.widgets.values())]
    for i, trigger in enumerate(triggers):
        trigger(fn, inputs=inputs, outputs=panel.plan, queue=False, show_progress="hidden",
                trigger_mode="always_last", api_name=api_name if i == 0 else False)
