"""The plot's labelled grid: cells in rows and columns, X values along the top, Y values down the left side.

Pure PIL, no model: the size is margins plus columns x rows of one slot each, a slot being the largest cell
(smaller cells sit centred in theirs), so a Width or Height axis still lines up.
"""
from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)
EMPTY = (200, 200, 200)  # a cell a Stop left unmade


@dataclass(frozen=True)
class GridLayout:
    """Where everything goes: the left and top margins and the slot every cell gets."""

    columns: int
    rows: int
    slot: tuple[int, int]  # (width, height) of one cell's place
    left: int  # room for the Y labels
    top: int  # room for the title and the X labels
    font_size: int

    @property
    def size(self) -> tuple[int, int]:
        return self.left + self.columns * self.slot[0], self.top + self.rows * self.slot[1]

    def cell_box(self, column: int, row: int) -> tuple[int, int, int, int]:
        x0, y0 = self.left + column * self.slot[0], self.top + row * self.slot[1]
        return x0, y0, x0 + self.slot[0], y0 + self.slot[1]


def _font(size: int):
    return ImageFont.load_default(size=size)


def _text_width(text: str, font) -> int:
    box = font.getbbox(text)
    return box[2] - box[0]


def wrap(text: str, font, width: int) -> list[str]:
    """Break a label into lines no wider than `width`, at spaces where possible, else inside a word."""
    lines: list[str] = []
    for word in text.split(" "):
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and _text_width(candidate, font) <= width:
            lines[-1] = candidate
            continue
        while _text_width(word, font) > width and len(word) > 1:  # a word wider than the column: split it
            cut = 1
            while cut < len(word) - 1 and _text_width(word[:cut + 1], font) <= width:
                cut += 1
            lines.append(word[:cut])
            word = word[cut:]
        lines.append(word)
    return lines or [""]


def layout(slot: tuple[int, int], x_labels: list[str], y_labels: list[str], title: str = "",
           columns: int | None = None, rows: int | None = None) -> GridLayout:
    """Margins sized to the labels: X labels wrap to a column's width, Y labels to at most two columns.

    Columns and rows default to the label counts (at least 1).
    """
    columns = columns or max(len(x_labels), 1)
    rows = rows or max(len(y_labels), 1)
    font_size = max(12, min(28, slot[1] // 12))
    font = _font(font_size)
    line = font_size + 4
    pad = font_size // 2
    top = 0
    if title:
        top += len(wrap(title, font, max(columns * slot[0] - 2 * pad, 40))) * line + pad
    if x_labels:
        top += max(len(wrap(t, font, slot[0] - 2 * pad)) for t in x_labels) * line + 2 * pad
    left = 0
    if y_labels:
        room = max(2 * slot[0], 8 * font_size)
        left = min(max(_text_width(t, font) for t in y_labels), room) + 2 * pad
    return GridLayout(columns, rows, slot, left, top, font_size)


def draw_grid(cells: list[list[Image.Image | None]], x_labels: list[str], y_labels: list[str], title: str = "",
              slot: tuple[int, int] | None = None) -> Image.Image:
    """The labelled grid: `cells[row][column]`, None for a cell not made (drawn grey).

    `slot` fixes every place's size (e.g. to keep video frames equal); by default it is the largest cell.
    """
    made = [c for row in cells for c in row if c is not None]
    if slot is None:
        slot = (max((c.width for c in made), default=64), max((c.height for c in made), default=64))
    grid = layout(slot, x_labels, y_labels, title, max(len(row) for row in cells), len(cells))
    canvas = Image.new("RGB", grid.size, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font, line, pad = _font(grid.font_size), grid.font_size + 4, grid.font_size // 2
    y = pad // 2
    if title:
        for text in wrap(title, font, max(grid.columns * slot[0] - 2 * pad, 40)):
            draw.text((grid.left + pad, y), text, fill=TEXT, font=font)
            y += line
    for column, label in enumerate(x_labels):
        lines = wrap(label, font, slot[0] - 2 * pad)
        x0, _, x1, y1 = grid.cell_box(column, 0)
        ty = grid.top - pad - len(lines) * line
        for text in lines:
            draw.text(((x0 + x1 - _text_width(text, font)) // 2, ty), text, fill=TEXT, font=font)
            ty += line
    for row, label in enumerate(y_labels):
        lines = wrap(label, font, grid.left - 2 * pad)
        _, y0, _, y1 = grid.cell_box(0, row)
        ty = (y0 + y1 - len(lines) * line) // 2
        for text in lines:
            draw.text((grid.left - pad - _text_width(text, font), ty), text, fill=TEXT, font=font)
            ty += line
    for row, row_cells in enumerate(cells):
        for column, cell in enumerate(row_cells):
            x0, y0, x1, y1 = grid.cell_box(column, row)
            if cell is None:
                draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=EMPTY)
                continue
            canvas.paste(cell.convert("RGB"), (x0 + (slot[0] - cell.width) // 2, y0 + (slot[1] - cell.height) // 2))
    return canvas
