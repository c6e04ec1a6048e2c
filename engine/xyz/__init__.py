"""The X/Y/Z plot: one setting per axis, a cell per combination, a labelled grid, and sweep videos.

- `axes`: A1111's axis names and value syntax (lists, `1-20 (+5)`, `1-20 [4]`), checked value by value;
- `grid`: the labelled grid image (pure PIL);
- `plot`: planning (cell count, time estimate), running every cell as a plain run, grids, videos and files.
"""
from engine.xyz.axes import MAX_CELLS, PLOT_GUIDANCE, Axis, axis_names, parse_axis, parse_axis_spec  # noqa: F401
from engine.xyz.grid import GridLayout, draw_grid, layout  # noqa: F401
from engine.xyz.plot import (  # noqa: F401
    Plan,
    PlotImage,
    PlotRequest,
    PlotResult,
    cell_images,
    default_seconds_per_step,
    describe_plan,
    estimate_seconds,
    plan_plot,
    run_plot,
    write_plot,
    write_sweep_video,
)
