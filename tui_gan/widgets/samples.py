"""Generated samples drawn with half blocks: two pixel rows per terminal cell.

``▀`` takes the upper pixel as its foreground colour and the lower pixel as its background.
The grid is laid out to fill the panel, rendered once per new batch or resize, and cached
as Strips that ``render_line`` hands out.
"""

from __future__ import annotations

from functools import lru_cache

from typing import TYPE_CHECKING

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Size
from textual.filter import ANSIToTruecolor
from textual.strip import Strip
from textual.widget import Widget

if TYPE_CHECKING:  # numpy and Pillow load with the first samples, not before the first frame
    import numpy as np

UPPER_HALF = "▀"
MIN_SAMPLES = 9  # shrink tiles until at least this many samples fit, if they can
MIN_TILE = 8


def fit_grid(n: int, native: int, width: int, height: int, gap: int = 1) -> tuple[int, int, int]:
    """(columns, rows, tile size in pixels) for ``n`` square images of ``native`` pixels in a
    panel of ``width`` x ``height`` cells (2 pixel rows per cell), with ``gap`` pixels between.

    Prefers the largest tiles that show at least 9 samples, else at least 4, else 1; tiles
    never grow beyond native size (no blurry upscaling) nor shrink below MIN_TILE."""
    px_w, px_h = width, height * 2
    layouts = []
    for tile in range(native, min(native, MIN_TILE) - 1, -1):
        cols = min(n, (px_w + gap) // (tile + gap))
        rows = (px_h + gap) // (tile + gap)
        if cols <= 0 or rows <= 0:
            continue
        rows = min(rows, -(-n // cols))
        layouts.append((cols, rows, tile))
    for target in (MIN_SAMPLES, 4, 1):
        for cols, rows, tile in layouts:  # largest tiles first
            if cols * rows >= min(n, target):
                return cols, rows, tile
    return (0, 0, 0)


def compose_canvas(
    images: np.ndarray, width: int, height: int, background: tuple[int, int, int], gap: int = 1
) -> np.ndarray:
    """uint8 (N, C, H, W) -> an RGB canvas (2*height, width, 3) holding as many tiles as fit."""
    import numpy as np
    from PIL import Image

    canvas = np.empty((height * 2, width, 3), dtype=np.uint8)
    canvas[:] = background
    n, c, native = images.shape[0], images.shape[1], images.shape[-1]
    cols, rows, tile = fit_grid(n, native, width, height, gap)
    if tile == 0:
        return canvas
    used_w, used_h = cols * (tile + gap) - gap, rows * (tile + gap) - gap
    x0, y0 = (width - used_w) // 2, (height * 2 - used_h) // 2
    y0 -= y0 % 2  # tiles start on a cell boundary so rows of tiles line up with cells
    for i in range(min(n, cols * rows)):
        img = images[i].transpose(1, 2, 0)
        if c == 1:
            img = np.repeat(img, 3, axis=2)
        if tile != native:
            img = np.asarray(Image.fromarray(img).resize((tile, tile), Image.BOX))
        r, col = divmod(i, cols)
        y, x = y0 + r * (tile + gap), x0 + col * (tile + gap)
        canvas[y : y + tile, x : x + tile] = img
    return canvas


@lru_cache(maxsize=65536)
def _style(key: int) -> Style:
    """The style of a cell whose upper and lower pixels are packed as 0xRRGGBB_RRGGBB."""
    upper, lower = key >> 24, key & 0xFFFFFF
    return Style(
        color=Color.from_rgb(upper >> 16, (upper >> 8) & 255, upper & 255),
        bgcolor=Color.from_rgb(lower >> 16, (lower >> 8) & 255, lower & 255),
    )


def canvas_to_strips(canvas: np.ndarray) -> list[Strip]:
    """One Strip per cell row; runs of equal cells are merged into one Segment.

    The cells are packed into integers and split into runs with numpy, so a panel of
    samples costs a few thousand Segments and no per-pixel Python."""
    import numpy as np

    rgb = canvas.astype(np.int64)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]  # (2 * height, width)
    cells = (packed[0::2] << 24) | packed[1::2]  # upper pixel, lower pixel
    width = canvas.shape[1]
    strips = []
    for row in cells:
        starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
        lengths = np.diff(np.r_[starts, width])
        segments = [Segment(UPPER_HALF * int(n), _style(int(key))) for key, n in zip(row[starts].tolist(), lengths.tolist())]
        strips.append(Strip(segments, width))
    return strips


def render_halfblock(
    images: np.ndarray, width: int, height: int, background: tuple[int, int, int] = (0, 0, 0)
) -> list[Strip]:
    return canvas_to_strips(compose_canvas(images, width, height, background))


class SamplesView(Widget):
    """The fixed-noise samples, as many as fit the panel."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._images: np.ndarray | None = None
        self._strips: list[Strip] = []
        self._rendered_for: tuple[int, int, tuple[int, int, int]] | None = None

    def set_images(self, images: np.ndarray) -> None:
        """New samples: uint8 (N, C, H, W)."""
        self._images = images
        self._rendered_for = None
        self.refresh()

    @property
    def shown(self) -> int:
        """How many samples fit at the current size."""
        if self._images is None:
            return 0
        cols, rows, _ = fit_grid(len(self._images), self._images.shape[-1], self.size.width, self.size.height)
        return min(len(self._images), cols * rows)

    def _background(self) -> tuple[int, int, int]:
        return self.styles.background.rgb if self.styles.background.a else (0, 0, 0)

    def get_line_filters(self):
        """The app's filters less the ANSI-to-truecolor one: every cell here is already
        truecolor, and that filter would rebuild each of the panel's Segments per redraw."""
        return [f for f in super().get_line_filters() if not isinstance(f, ANSIToTruecolor)]

    def render_line(self, y: int) -> Strip:
        width, height = self.size.width, self.size.height
        if self._images is None or width <= 0 or height <= 0:
            return Strip.blank(width, self.rich_style)
        key = (width, height, self._background())
        if self._rendered_for != key:
            self._strips = render_halfblock(self._images, width, height, key[2])
            self._rendered_for = key
        return self._strips[y] if y < len(self._strips) else Strip.blank(width, self.rich_style)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return container.height
