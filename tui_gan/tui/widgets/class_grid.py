"""A conditional run's samples (--conditional): a row of samples per class, the class's name
at the left of its row.

The samples arrive as rows of ``columns`` samples, one row per class (ev.Samples.classes).
The panel shows as many of those rows as fit, each cut to as many columns as fit, the tiles
as large as fit (the same rule as the plain grid: tiles.largest_showing). The names are
drawn into the panel's own lines, in a column at the left of the tiles, so the half-block
and the real-pixel pictures need no widget beside them: the picture covers the tiles only
(Sixel draws over whatever cells it covers) and each line is the name's cells, then the
picture's. The block of names and tiles is centred in the panel, as the plain grid is.

Layouts are worked out in pixels of a cell of ``cell`` pixels: (1, 2) for half blocks (two
pixel rows per cell), the terminal's cell size for real pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from .tiles import MIN_TILE, largest_showing

if TYPE_CHECKING:
    import numpy as np

HALF_BLOCK_CELL = (1, 2)
MAX_LABEL = 14  # a name's cells at most, however wide the panel: the tiles need the room
ELLIPSIS = "…"


@dataclass(frozen=True)
class ClassRows:
    """What a batch of samples is: the i-th row of ``columns`` samples is of class
    ``classes[i]``, named ``names[i]``."""

    classes: tuple[int, ...]
    names: tuple[str, ...]
    columns: int
    longest: int = 0
    """The cells of the run's longest class name, shown or not: the names' column keeps
    its width from page to page, and so the rows the panel shows (``k`` steps by them)."""


@dataclass(frozen=True)
class ClassLayout:
    """Where a class grid goes in a panel, in cells (tiles in pixels)."""

    left: int
    """Blank cells before the names: the block of names and tiles is centred."""
    label_width: int
    """The names' column, with the space before the tiles."""
    area: int
    """The cells the tiles take, across (the picture's width)."""
    grid: tuple[int, int, int]
    """(columns, rows, tile size in pixels) of the tiles shown."""
    top: int
    """The pixel row of the first row of tiles."""
    lines: tuple[int, ...]
    """The line of each row's name (the line through its tiles' middle)."""
    gap: int

    @property
    def rows(self) -> int:
        """How many classes the panel shows."""
        return self.grid[1]


def cut(name: str, width: int) -> str:
    """``name`` in at most ``width`` cells, its end cut off with an ellipsis."""
    if cell_len(name) <= width:
        return name
    while name and cell_len(name) + 1 > width:
        name = name[:-1]
    return name.rstrip() + ELLIPSIS if width > 0 else ""


def label_width(rows: ClassRows, width: int) -> int:
    """The names' column in a panel ``width`` cells wide, the space after them included: as
    wide as the run's longest name, at most a quarter of the panel (and MAX_LABEL)."""
    longest = max([rows.longest, *(cell_len(name) for name in rows.names)])
    return min(longest, MAX_LABEL, max(3, width // 4)) + 1


def fit_class_grid(rows: int, columns: int, native: int, width: int, height: int, gap: int,
                   scale: bool = False, pitch: int = 1) -> tuple[int, int, int]:
    """(columns, rows, tile) of ``rows`` rows of ``columns`` square images of ``native``
    pixels in ``width`` x ``height`` pixels: every image at the largest whole multiple of
    the native size that fits them all (``scale``: real pixels), else the largest tiles
    (never above native size, never below MIN_TILE) that show 9 images, else 4, else 1.
    A row of tiles is at least ``pitch`` pixels tall with its gap, so that each row has a
    line of its own for its name."""
    def layout(tile: int) -> tuple[int, int, int]:
        if tile + gap < pitch and rows > 1:
            return 0, 0, tile
        cols = min(columns, (width + gap) // (tile + gap))
        shown = min(rows, (height + gap) // (tile + gap))
        return (cols, shown, tile) if cols > 0 and shown > 0 else (0, 0, tile)

    for factor in range(max(1, min(width, height) // native), 1, -1) if scale else ():
        cols, shown, tile = layout(native * factor)
        if cols * shown == rows * columns:
            return cols, shown, tile
    return largest_showing([layout(tile) for tile in range(native, min(native, MIN_TILE) - 1, -1)], rows * columns)


def class_layout(rows: ClassRows, native: int, width: int, height: int, cell: tuple[int, int] = HALF_BLOCK_CELL,
                 gap: int = 1, scale: bool = False) -> ClassLayout:
    """The layout of ``rows`` in a panel of ``width`` x ``height`` cells of ``cell`` pixels."""
    cell_w, cell_h = cell
    names = label_width(rows, width)
    px_w, px_h = max(0, width - names) * cell_w, height * cell_h
    grid = fit_class_grid(len(rows.names), rows.columns, native, px_w, px_h, gap, scale, pitch=cell_h)
    cols, shown, tile = grid
    if tile == 0:
        return ClassLayout(0, 0, 0, (0, 0, 0), 0, (), gap)
    used_w, used_h = cols * (tile + gap) - gap, shown * (tile + gap) - gap
    area = -(-used_w // cell_w)
    top = (px_h - used_h) // 2
    top -= top % cell_h  # the first row starts on a cell's edge, so its name lines up alike in both paths
    lines = tuple(min(height - 1, (top + r * (tile + gap) + tile // 2) // cell_h) for r in range(shown))
    return ClassLayout((width - names - area) // 2, names, area, grid, top, lines, gap)


def compose_class_canvas(images: np.ndarray, rows: ClassRows, layout: ClassLayout, width: int, height: int,
                         background: tuple[int, int, int]) -> np.ndarray:
    """uint8 (N, C, H, W) in rows of ``rows.columns`` -> the tiles' RGB canvas (``height``,
    ``width``, 3) in pixels: the first rows, each cut to the layout's columns."""
    import numpy as np

    from ...pictures.grids import paste_tiles

    cols, shown, tile = layout.grid
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = background
    arr = np.asarray(images)
    by_row = arr[: len(rows.names) * rows.columns].reshape(len(rows.names), rows.columns, *arr.shape[1:])
    kept = by_row[:shown, :cols].reshape(shown * cols, *arr.shape[1:])
    x0 = (width - (cols * (tile + layout.gap) - layout.gap)) // 2
    paste_tiles(canvas, kept, cols, shown, tile, x0, layout.top, layout.gap)
    return canvas


def label_strips(rows: ClassRows, layout: ClassLayout, height: int, style: Style) -> list[Strip]:
    """The names' column, one Strip per line (``label_width`` cells): each name on its row's line."""
    width = layout.label_width
    blank = Strip.blank(width, style)
    strips = [blank] * height
    for name, line in zip(rows.names, layout.lines):
        text = cut(name, width - 1)
        strips[line] = Strip([Segment(" " * (width - 1 - cell_len(text)) + text + " ", style)], width)
    return strips


def join_line(layout: ClassLayout, label: Strip, tiles: Strip, width: int, style: Style) -> Strip:
    """A panel line: the blank margin, the name's cells, the tiles' cells, the blank rest."""
    rest = max(0, width - layout.left - layout.label_width - layout.area)
    return Strip.join([Strip.blank(layout.left, style), label, tiles, Strip.blank(rest, style)])
