"""Planning and running an X/Y/Z plot: every cell is a plain text-to-image or image-to-image run.

A cell's request is the base request with its axis values put in, and it runs through `text_to_image` or
`image_to_image` itself, with its own generator seeded with the cell's seed. So a cell is pixel for pixel the
image a plain run with those settings makes, and the prompt embeddings come from the manager's cache (one
encoding per distinct prompt, however many cells).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from PIL import Image

from engine.control.units import with_control_weight
from engine.files import pnginfo
from engine.image.generate import image_to_image, text_to_image
from engine.image.request import GeneratedImage, ImageRequest, RunControl, StepUpdate, check_request, pick_seed
from engine.text.limits import excerpt
from engine.text.prompts import MAX_TOKENS, check_characters
from engine.video import MAX_FPS
from engine.xyz.axes import MAX_CELLS, PLOT_GUIDANCE, Axis, parse_axis_spec
from engine.xyz.grid import draw_grid

SLOTS = ("X", "Y", "Z")
REFERENCE_PIXELS = 512 * 512  # estimates are kept in seconds per step of a 512x512 image


@dataclass
class PlotRequest:
    """An X/Y/Z plot: a base request and up to three axes written "Name: values" (A1111's names, any case).

    Every cell uses the base request's seed (a random one picked once when it is -1) unless Seed is an axis.
    """

    base: ImageRequest = field(default_factory=ImageRequest)
    x: str = ""  # e.g. "CFG Scale: 1, 5, 9"; empty for no axis
    y: str = ""  # e.g. "Steps: 2-40 (+2)"
    z: str = ""  # one grid per Z value
    video: str = ""  # "", "X", "Y" or "Z": also render that axis as an MP4, one captioned frame per value
    fps: float = 4.0  # the sweep video's frames per second


@dataclass
class Cell:
    """One image of the plot: where it sits, and the request that makes it."""

    position: tuple[int, int, int]  # (x, y, z) value indices
    request: ImageRequest
    labels: tuple[str, ...]  # e.g. ("CFG Scale: 5", "Steps: 3")


@dataclass
class Plan:
    """The axes and every cell, checked and with seeds fixed, before anything runs."""

    task: str
    axes: dict[str, Axis | None]
    cells: list[Cell]
    video: str = ""  # the axis slot rendered as a video, or ""
    fps: float = 4.0

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(len(self.axes[s]) if self.axes[s] else 1 for s in SLOTS)

    def cell(self, x: int, y: int = 0, z: int = 0) -> Cell:
        nx, ny, _ = self.shape
        return self.cells[(z * ny + y) * nx + x]

    def step_units(self) -> float:
        """Denoising steps in all, each weighted by its image's area against 512x512."""
        total = 0.0
        for cell in self.cells:
            req = cell.request
            steps = req.num_inference_steps
            if self.task != "txt2img":
                steps = max(1, int(steps * req.strength))
            total += steps * (req.width * req.height) / REFERENCE_PIXELS
        return total


@dataclass
class PlotImage:
    """A grid or a cell as it is saved: the image and its A1111 parameters text."""

    image: Image.Image
    parameters: str
    name: str  # a short file-name stem: "grid", "grid-z2", "x1-y2-z1"


@dataclass
class PlotResult:
    """The grids (one per Z value), the cells in plan order, the sweep video's frames, and the measured pace."""

    plan: Plan
    grids: list[PlotImage] = field(default_factory=list)
    cells: list[GeneratedImage | None] = field(default_factory=list)
    frames: list[Image.Image] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    seconds_per_step: float | None = None  # measured: seconds per 512x512 step, for the next estimate


# 1. planning
def plan_plot(req: PlotRequest, task: str = "txt2img", max_prompt_tokens: int = MAX_TOKENS) -> Plan:
    """Parse and check the axes and every cell's settings; nothing runs. Raises ValueError with one sentence.

    `max_prompt_tokens` is the manager's prompt cap: a Prompt S/R value that would grow a prompt past it in
    characters is refused before any prompt is made.
    """
    if task not in ("txt2img", "img2img"):
        raise ValueError(f"The X/Y/Z plot runs in Text to image and Image to image, not {excerpt(task)}.")
    axes = {slot: parse_axis_spec(spec, task, slot) for slot, spec in zip(SLOTS, (req.x, req.y, req.z))}
    named = [(slot, axis) for slot, axis in axes.items() if axis]
    if not named:
        raise ValueError("Choose at least one axis for the X/Y/Z plot, e.g. X: 'CFG Scale: 5, 7.5, 10'.")
    for i, (slot, axis) in enumerate(named):
        for other_slot, other in named[:i]:
            if other.name == axis.name:
                raise ValueError(f"{other_slot} and {slot} axes are both {axis.name}; give each axis its own setting.")
    counts = [len(axes[s]) if axes[s] else 1 for s in SLOTS]
    total = counts[0] * counts[1] * counts[2]
    if total > MAX_CELLS:
        sizes = " × ".join(f"{slot} {len(axis)}" for slot, axis in named)
        raise ValueError(f"The plot has {total} cells ({sizes}); the limit is {MAX_CELLS}. Use fewer values.")
    video = (req.video or "").strip().upper()
    if video and (video not in SLOTS or not axes[video]):
        raise ValueError(f"The sweep video goes along an axis that is set; {excerpt(req.video)} is not one.")
    if video and not (isinstance(req.fps, (int, float)) and 0 < req.fps <= MAX_FPS):
        raise ValueError(f"The sweep video's fps must be above 0 and at most {MAX_FPS}; got {excerpt(req.fps)}.")
    if any(axis and axis.name == "Var. seed" for axis in axes.values()) and not req.base.variation_strength:
        raise ValueError("A Var. seed axis changes nothing at variation strength 0; set a Variation strength above 0 "
                         "or add a Var. strength axis.")
    base = replace(req.base, seed=pick_seed(req.base.seed), variation_seed=pick_seed(req.base.variation_seed),
                   batch_count=1)  # one variation seed for every cell, so a Var. strength sweep walks one way
    seeds = _axis_seeds(axes)
    _check_search(axes, base)
    _check_growth(axes, base, max_prompt_tokens)
    cells = []
    for z in range(counts[2]):
        for y in range(counts[1]):
            for x in range(counts[0]):
                position = (x, y, z)
                cell_req, labels = base, []
                for slot, index in zip(SLOTS, position):
                    axis = axes[slot]
                    if axis:
                        value = seeds[slot][index] if axis.name in ("Seed", "Var. seed") else axis.values[index]
                        cell_req = apply_value(cell_req, axis, value, task)
                        labels.append(axis.labels[index])
                checked, _ = check_request(cell_req, task, PLOT_GUIDANCE)
                cells.append(Cell(position, replace(cell_req, seed=checked.seed), tuple(labels)))
    return Plan(task, axes, cells, video, float(req.fps))


def _axis_seeds(axes: dict[str, Axis | None]) -> dict[str, list[int]]:
    """A Seed axis's -1 values become random seeds, picked once so the whole row or column shares them."""
    return {slot: [pick_seed(int(v)) for v in axis.values] for slot, axis in axes.items()
            if axis and axis.name in ("Seed", "Var. seed")}


def _check_search(axes: dict[str, Axis | None], base: ImageRequest) -> None:
    for slot, axis in axes.items():
        if axis and axis.name == "Prompt S/R":
            search = axis.values[0]
            if search not in base.prompt and search not in base.negative_prompt:
                raise ValueError(f"{slot} axis (Prompt S/R): {excerpt(search)} is not in the prompt or the negative "
                                 "prompt; the first value is the text each value replaces.")


def _check_growth(axes: dict[str, Axis | None], base: ImageRequest, max_prompt_tokens: int) -> None:
    """A replacement's length is worked out before it is made: a short value found many times can grow a prompt
    past any cap (and past memory) in 100 cells."""
    for slot, axis in axes.items():
        if axis and axis.name == "Prompt S/R":
            search = axis.values[0]
            for value in axis.values[1:]:
                for text, what in ((base.prompt, "prompt"), (base.negative_prompt, "negative prompt")):
                    grown = len(text) + text.count(search) * (len(value) - len(search))
                    check_characters(grown, max_prompt_tokens, f"{slot} axis (Prompt S/R): with {excerpt(value)}, "
                                                               f"the {what}")


def check_prompts(manager, plan: Plan) -> None:
    """Every cell's prompts within the manager's cap (--max-prompt-tokens), before the first cell runs."""
    seen = set()
    for cell in plan.cells:
        pair = (cell.request.prompt, cell.request.negative_prompt)
        if pair in seen:
            continue
        seen.add(pair)
        replaced = next((f" ({excerpt(label, 60)})" for label in cell.labels if label.startswith("Prompt S/R")), "")
        manager.check_prompt(cell.request.prompt, f"The prompt{replaced}")
        manager.check_prompt(cell.request.negative_prompt, f"The negative prompt{replaced}")


def apply_value(req: ImageRequest, axis: Axis, value, task: str) -> ImageRequest:
    """The request with one axis value put in, in diffusers' argument names."""
    name = axis.name
    if name == "Prompt S/R":
        search = axis.values[0]
        return replace(req, prompt=req.prompt.replace(search, value),
                       negative_prompt=req.negative_prompt.replace(search, value))
    if name == "ControlNet Weight":
        return with_control_weight(req, value)
    if name in ("Width", "Height") and task != "txt2img":  # image to image keeps the aspect: one longer side
        return replace(req, width=value, height=value)
    field_name = {"Seed": "seed", "Steps": "num_inference_steps", "CFG Scale": "guidance_scale",
                  "Sampler": "sampler", "Denoising": "strength", "Width": "width", "Height": "height",
                  "Var. seed": "variation_seed", "Var. strength": "variation_strength"}[name]
    return replace(req, **{field_name: value})


# 2. cost before the run
def default_seconds_per_step(manager) -> float:
    """A first guess before anything was measured: one 512x512 step on this device (BENCHMARKS.md)."""
    if getattr(manager, "model_name", None) == "tiny":
        return 0.01
    return {"cuda": 0.06, "mps": 0.4}.get(str(getattr(manager, "device", "cpu")), 1.7)


def estimate_seconds(plan: Plan, seconds_per_step: float) -> float:
    return plan.step_units() * seconds_per_step


def describe_plan(plan: Plan, seconds_per_step: float, measured: bool = False) -> str:
    """One line for the user before the run: the cell count and the estimated time."""
    sizes = " × ".join(f"{slot} {len(plan.axes[slot])}" for slot in SLOTS if plan.axes[slot])
    steps = sum(c.request.num_inference_steps for c in plan.cells)
    basis = "measured on your last plot" if measured else "a first guess for this device"
    return (f"{len(plan.cells)} cell{'s' if len(plan.cells) != 1 else ''} ({sizes}), {steps} steps in all: "
            f"about {_duration(estimate_seconds(plan, seconds_per_step))} (an estimate, {basis}).")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(seconds, 1):.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


# 3. running
def run_plot(manager, req: PlotRequest, image=None, on_step: Callable[[StepUpdate], None] | None = None,
             control: RunControl | None = None, task: str | None = None) -> PlotResult:
    """Make every cell, then the labelled grids (one per Z value) and, if asked, the sweep video's frames.

    `image` is the start image for Image to image (the task is img2img when it is given).
    Progress comes as StepUpdate with image_index = the cell and batch_count = the number of cells.
    """
    # 1. check everything before the first step
    task = task or ("txt2img" if image is None else "img2img")
    if task == "img2img" and image is None:
        raise ValueError("Upload an image to start from.")
    plan = plan_plot(req, task, manager.options.max_prompt_tokens)
    check_prompts(manager, plan)
    control = control or RunControl()
    result = PlotResult(plan, cells=[None] * len(plan.cells))
    # 2. the cells, one plain run each
    started, units = time.monotonic(), 0.0
    for index, cell in enumerate(plan.cells):
        if control.stopped:
            result.interrupted = True
            break
        relay = _relay(index, len(plan.cells), on_step)
        if task == "txt2img":
            run = text_to_image(manager, cell.request, relay, control, guidance_range=PLOT_GUIDANCE)
        else:
            run = image_to_image(manager, cell.request, image, relay, control, guidance_range=PLOT_GUIDANCE)
        for note in run.notes:
            if note not in result.notes and not note.startswith("Stopped early"):
                result.notes.append(note)
        if run.images and not run.images[0].interrupted:
            result.cells[index] = run.images[0]
            units += Plan(task, plan.axes, [cell]).step_units()
        if run.interrupted:
            result.interrupted = True
            break
    made = sum(c is not None for c in result.cells)
    if units:
        result.seconds_per_step = (time.monotonic() - started) / units
    if result.interrupted:
        result.notes.append(f"Stopped early: {made} of {len(plan.cells)} cells made.")
    if not made:
        return result
    # 3. the grids and the video
    result.grids = make_grids(plan, result.cells)
    if plan.video:
        result.frames = sweep_frames(plan, result.cells)
    return result


def _relay(index: int, cells: int, on_step):
    if on_step is None:
        return None
    return lambda u: on_step(StepUpdate(index, cells, u.step, u.total_steps, u.preview, u.num_inference_steps,
                                        u.strength))


# 4. the grids, the video and the files
def _images(cells: list[GeneratedImage | None]) -> list[Image.Image | None]:
    return [c.image if c is not None else None for c in cells]


def _slot(cells: list[GeneratedImage | None]) -> tuple[int, int]:
    made = [c.image for c in cells if c is not None]
    return max(i.width for i in made), max(i.height for i in made)


def make_grids(plan: Plan, cells: list[GeneratedImage | None]) -> list[PlotImage]:
    """One labelled grid per Z value, X along the top and Y down the side, with PNG info naming the axes."""
    nx, ny, nz = plan.shape
    x_axis, y_axis, z_axis = (plan.axes[s] for s in SLOTS)
    images, slot = _images(cells), _slot(cells)
    grids = []
    for z in range(nz):
        rows = [[images[(z * ny + y) * nx + x] for x in range(nx)] for y in range(ny)]
        title = z_axis.labels[z] if z_axis else ""
        grid = draw_grid(rows, x_axis.labels if x_axis else [], y_axis.labels if y_axis else [], title, slot)
        first = next((c for c in cells[z * nx * ny:(z + 1) * nx * ny] if c is not None), None)
        name = f"grid-z{z + 1}" if z_axis else "grid"
        grids.append(PlotImage(grid, grid_parameters(plan, first.parameters if first else ""), name))
    return grids


def grid_parameters(plan: Plan, first_cell_parameters: str) -> str:
    """The first cell's parameters plus A1111's plot fields (X Type, X Values, ...), so the grid says how it was made."""
    fields = pnginfo.parse_parameters(first_cell_parameters) if first_cell_parameters else {}
    prompt, negative = fields.pop("prompt", ""), fields.pop("negative_prompt", "")
    fields["Script"] = "X/Y/Z plot"
    for slot in SLOTS:
        axis = plan.axes[slot]
        if axis:
            fields[f"{slot} Type"] = axis.name
            fields[f"{slot} Values"] = axis.text
    if plan.video:
        fields["Sweep video"] = plan.video
    return pnginfo.format_parameters(prompt, negative, fields)


def sweep_frames(plan: Plan, cells: list[GeneratedImage | None]) -> list[Image.Image]:
    """One frame per value of the video axis, its value captioned; other axes, if any, form a grid in the frame."""
    from engine import video

    nx, ny, nz = plan.shape
    along = plan.axes[plan.video]
    others = [s for s in SLOTS if s != plan.video and plan.axes[s]]
    images, slot = _images(cells), _slot(cells)
    index_of = {cell.position: i for i, cell in enumerate(plan.cells)}
    frames = []
    for k, label in enumerate(along.labels):
        def at(a: int = 0, b: int = 0) -> Image.Image | None:
            position = dict.fromkeys(SLOTS, 0)
            position[plan.video] = k
            for slot_name, value in zip(others, (a, b)):
                position[slot_name] = value
            return images[index_of[tuple(position[s] for s in SLOTS)]]

        columns = plan.axes[others[0]].labels if others else []
        rows = plan.axes[others[1]].labels if len(others) > 1 else []
        grid = [[at(a, b) for a in range(max(len(columns), 1))] for b in range(max(len(rows), 1))]
        frames.append(video.caption(draw_grid(grid, columns, rows, slot=slot), label))
    return frames


def write_sweep_video(result: PlotResult, path, fps: float | None = None) -> Path:
    """The sweep video through the shared MP4 writer, with the grid's parameters in its metadata."""
    from engine import video

    if not result.frames:
        raise ValueError("This plot has no sweep video; choose the axis to render as a video.")
    parameters = result.grids[0].parameters if result.grids else ""
    return video.write_mp4(result.frames, path, fps or result.plan.fps,
                           metadata={"title": "Diffusion Studio X/Y/Z sweep", "parameters": parameters})


def cell_images(result: PlotResult) -> list[PlotImage]:
    """Each made cell as its own PNG with its own parameters, named by its place (x1-y2-z1)."""
    items = []
    for cell, made in zip(result.plan.cells, result.cells):
        if made is not None:
            name = "-".join(f"{s.lower()}{i + 1}" for s, i in zip(SLOTS, cell.position) if result.plan.axes[s])
            items.append(PlotImage(made.image, made.parameters, name))
    return items


def write_plot(result: PlotResult, out: Path, video_out: Path | None = None) -> list[Path]:
    """Save for the command line: the grid at `out` (grid-z2 etc. beside it), cells in <out>-cells/, the video."""
    out = Path(out)
    written = []
    if video_out is None:
        for i, grid in enumerate(result.grids):
            path = out if i == 0 else out.with_name(f"{out.stem}-z{i + 1}{out.suffix or '.png'}")
            written.append(pnginfo.save_png(grid.image, path, grid.parameters))
    folder = out.with_name(f"{out.stem}-cells")
    folder.mkdir(exist_ok=True)
    for item in cell_images(result):
        written.append(pnginfo.save_png(item.image, folder / f"{item.name}.png", item.parameters))
    if video_out is not None:
        written.insert(0, write_sweep_video(result, video_out))
    return written
