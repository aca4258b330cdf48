"""Generated samples drawn with half blocks: two pixel rows per terminal cell (or, where the
app draws real pixels, by pixels.py).

``▀`` takes the upper pixel as its foreground colour and the lower pixel as its background.
The grid is laid out to fill the panel, rendered once per new batch or resize, and cached
as Strips that ``render_line`` hands out.
"""

from __future__ import annotations

from collections.abc import Hashable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.filter import ANSIToTruecolor
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from .class_grid import (
    HALF_BLOCK_CELL,
    ClassLayout,
    ClassRows,
    class_layout,
    compose_class_canvas,
    join_line,
    label_strips,
)
from .palette import palette_numbers, terminal_palette
from .tiles import MIN_TILE, largest_showing

if TYPE_CHECKING:  # numpy and Pillow load with the first samples, not before the first frame
    import numpy as np

    from .pixels import Compose, Picture, PixelPictures

UPPER_HALF = "▀"
#: The picture in pixels shown, with a conditional run's layout and its names' lines.
Chosen = tuple["Picture", ClassLayout | None, list[Strip]]


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
    return largest_showing(layouts, n)



def compose_canvas(
    images: np.ndarray, width: int, height: int, background: tuple[int, int, int], gap: int = 1
) -> np.ndarray:
    """uint8 (N, C, H, W) -> an RGB canvas (2*height, width, 3) holding as many tiles as fit."""
    import numpy as np

    from ...pictures.grids import paste_tiles

    canvas = np.empty((height * 2, width, 3), dtype=np.uint8)
    canvas[:] = background
    cols, rows, tile = fit_grid(images.shape[0], images.shape[-1], width, height, gap)
    if tile == 0:
        return canvas
    used_w, used_h = cols * (tile + gap) - gap, rows * (tile + gap) - gap
    x0, y0 = (width - used_w) // 2, (height * 2 - used_h) // 2
    y0 -= y0 % 2  # tiles start on a cell boundary so rows of tiles line up with cells
    paste_tiles(canvas, images, cols, rows, tile, x0, y0, gap)
    return canvas


@lru_cache(maxsize=65536)
def _style(key: int) -> Style:
    """The style of a cell whose upper and lower pixels are packed as 0xRRGGBB_RRGGBB."""
    upper, lower = key >> 24, key & 0xFFFFFF
    return Style.from_color(
        Color.from_rgb(upper >> 16, (upper >> 8) & 255, upper & 255),
        Color.from_rgb(lower >> 16, (lower >> 8) & 255, lower & 255),
    )


@lru_cache(maxsize=65536)
def _palette_style(key: int) -> Style:
    """The style of a cell whose upper and lower pixels are palette numbers packed as 0xUULL."""
    return Style.from_color(Color.from_ansi(key >> 8), Color.from_ansi(key & 255))


def canvas_to_strips(canvas: np.ndarray, color_system: str | None = "truecolor",
                     background: tuple[int, int, int] = (0, 0, 0),
                     shown: tuple[tuple[int, int, int], ...] | None = None) -> list[Strip]:
    """One Strip per cell row; runs of equal cells are merged into one Segment.

    The cells are packed into integers and split into runs with numpy, so a panel of
    samples costs a few thousand Segments and no per-pixel Python. On a terminal with
    fewer colours the pixels are dithered onto its palette here (palette.py; ``shown``: the
    16 colours it said it shows), rather than mapped one distinct colour at a time by Rich
    when each frame is written."""
    import numpy as np

    palette = terminal_palette(color_system, shown)
    if palette is None:
        rgb = canvas.astype(np.int64)
        packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]  # (2 * height, width)
        cells, style = (packed[0::2] << 24) | packed[1::2], _style  # upper pixel, lower pixel
    else:
        numbers = palette_numbers(canvas, palette, background)
        cells, style = (numbers[0::2] << 8) | numbers[1::2], _palette_style
    width = canvas.shape[1]
    strips = []
    for row in cells:
        starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
        lengths = np.diff(np.r_[starts, width])
        segments = [Segment(UPPER_HALF * int(n), style(int(key))) for key, n in zip(row[starts].tolist(), lengths.tolist())]
        strips.append(Strip(segments, width))
    return strips


def render_halfblock(
    images: np.ndarray, width: int, height: int, background: tuple[int, int, int] = (0, 0, 0),
    color_system: str | None = "truecolor", shown: tuple[tuple[int, int, int], ...] | None = None,
) -> list[Strip]:
    return canvas_to_strips(compose_canvas(images, width, height, background), color_system, background, shown)


class SamplesView(Widget):
    """The fixed-noise samples, as many as fit the panel: in half blocks, or in real pixels
    where the app draws them (``App.graphics``, see terminal_graphics.py and pixels.py). A
    conditional run's come as a row per class, each named at its left (class_grid.py)."""

    class RowsShown(Message):
        """The classes on screen changed (a conditional run's rows, ``classes_shown``)."""

        def __init__(self, view: SamplesView) -> None:
            super().__init__()
            self.view = view

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._images: np.ndarray | None = None
        self._rows: ClassRows | None = None  # a conditional run's: the class of each row
        self._drawn_layout: ClassLayout | None = None  # the class layout of the lines drawn last
        self._drawn_classes: tuple[int, ...] = ()  # and the classes it showed
        self._layout: tuple[Any, ClassLayout | None] = (None, None)  # the half blocks' (made for, layout)
        self._key: Hashable = 0  # names the images for the pictures in pixels
        self._sequence: list[tuple[Hashable, np.ndarray]] | None = None  # every frame to come (latent walks)
        self._strips: list[Strip] = []
        self._rendered_for: tuple[int, int, tuple[int, int, int], str | None] | None = None
        self._pixels: PixelPictures | None = None
        self._last_picture: Hashable | None = None  # shown while the next one is made
        self._chosen: tuple[Any, Chosen | None] = (None, None)  # (what it was chosen for, the picture)
        self._told_failure = False

    def on_mount(self) -> None:
        graphics = getattr(self.app, "graphics", None)
        if graphics is not None and graphics.pixels:
            from .pixels import PixelPictures

            self._pixels = PixelPictures(graphics, self._start_worker, self.app.call_from_thread)
            self._pixels.on_ready = self._picture_ready

    def on_unmount(self) -> None:
        if self._pixels is not None:
            self._pixels.forget()

    def set_images(self, images: np.ndarray, key: Hashable | None = None, rows: ClassRows | None = None) -> None:
        """New samples: uint8 (N, C, H, W); ``key`` names them (one of set_sequence's keys);
        ``rows``: a conditional run's, the class of each row."""
        self._images = images
        self._rows = rows
        self._key = key if key is not None else (self._key + 1 if isinstance(self._key, int) else 0)
        self._rendered_for = None
        self.refresh()

    def set_sequence(self, frames: list[tuple[Hashable, np.ndarray]]) -> None:
        """The frames set_images will show in turn (key, images): in pixels, the panel shows
        them only once every one is made, rather than mixing pixels and half blocks."""
        self._sequence = frames
        if self._pixels is not None:
            self._pixels.keep = len(frames)

    @property
    def shown(self) -> int:
        """How many samples fit at the current size."""
        if self._images is None:
            return 0
        if self._rows is not None:
            cols, rows, _ = self._half_block_layout(self.size.width, self.size.height).grid
            return cols * rows
        cols, rows, _ = fit_grid(len(self._images), self._images.shape[-1], self.size.width, self.size.height)
        return min(len(self._images), cols * rows)

    @property
    def classes_shown(self) -> list[int]:
        """A conditional run's: the classes of the rows on screen, top to bottom ([] for the
        tutorial's GAN): the layout drawn last (half blocks or pixels), else the half blocks'."""
        if self._rows is None or self._images is None:
            return []
        layout = self._drawn_layout or self._half_block_layout(self.size.width, self.size.height)
        return list(self._rows.classes[: layout.rows])

    @property
    def drawn_layout(self) -> ClassLayout | None:
        """A conditional run's: the layout of the rows drawn last (None before any)."""
        return self._drawn_layout

    def _half_block_layout(self, width: int, height: int) -> ClassLayout:
        """Kept for the size and rows it was made for: each line drawn asks for it."""
        assert self._rows is not None and self._images is not None
        made_for = (width, height, self._rows, self._images.shape[-1])
        layout = self._layout[1]
        if layout is None or self._layout[0] != made_for:
            layout = class_layout(self._rows, self._images.shape[-1], width, height, HALF_BLOCK_CELL)
            self._layout = (made_for, layout)
        return layout

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
        picture = None
        # pixels on the screen on top only: under a dialog, Sixel would be drawn over it and
        # kitty's placeholders lose their colours (which name the image) to the dialog's tint
        if self._pixels is not None and self.screen.is_active:  # chosen once per frame, not per line
            chosen_for = (self._key, width, height, self._background(), self._pixels.generation,
                          len(self._sequence or ()), self._rows)
            if self._chosen[0] != chosen_for:
                self._chosen = (chosen_for, self._choose_picture(width, height))
            picture = self._chosen[1]
        if picture is not None:
            return self._picture_line(picture, y, width)
        # headless (tests, SVG screenshots) nothing is written to a terminal: keep truecolor
        colours = None if self.app.is_headless else self.app.console.color_system
        key = (width, height, self._background(), colours)
        if self._rendered_for != key:
            shown = getattr(getattr(self.app, "graphics", None), "palette", None)
            if self._rows is None:
                self._strips = render_halfblock(self._images, width, height, key[2], key[3], shown)
            else:
                self._strips = self._class_strips(width, height, key[2], key[3], shown)
            self._rendered_for = key
        if self._rows is not None:
            self._note_layout(self._half_block_layout(width, height))
        return self._strips[y] if y < len(self._strips) else Strip.blank(width, self.rich_style)

    def _class_strips(self, width: int, height: int, background: tuple[int, int, int], colours: str | None,
                      shown: tuple[tuple[int, int, int], ...] | None) -> list[Strip]:
        """A conditional run's lines in half blocks: each row's name, then its tiles."""
        assert self._rows is not None and self._images is not None
        layout = self._half_block_layout(width, height)
        if layout.rows == 0:
            return []
        canvas = compose_class_canvas(self._images, self._rows, layout, layout.area, height * 2, background)
        tiles = canvas_to_strips(canvas, colours, background, shown)
        labels = label_strips(self._rows, layout, height, self.rich_style)
        return [join_line(layout, label, line, width, self.rich_style) for label, line in zip(labels, tiles)]

    def _choose_picture(self, width: int, height: int) -> Chosen | None:
        """The picture in pixels to show now (with a conditional run's layout and names'
        lines); None: half blocks."""
        if self._rows is None:
            plain = self._picture(width, height)
            return None if plain is None else (plain, None, [])
        from .pixels import PIXEL_GAP  # loaded already: the panel draws pixels

        assert self._pixels is not None and self._images is not None
        rows, (cell_w, cell_h) = self._rows, self._pixels.graphics.cell
        layout = class_layout(rows, self._images.shape[-1], width, height, (cell_w, cell_h), PIXEL_GAP, scale=True)
        if layout.rows == 0:
            return None

        def compose(images: np.ndarray, _w: int, _h: int, background: tuple[int, int, int]) -> np.ndarray:
            return compose_class_canvas(images, rows, layout, layout.area * cell_w, height * cell_h, background)

        picture = self._picture(layout.area, height, compose, rows.names)
        return None if picture is None else (picture, layout, label_strips(rows, layout, height, self.rich_style))

    def _picture_line(self, chosen: Chosen, y: int, width: int) -> Strip:
        picture, layout, labels = chosen
        if layout is None:
            return picture.line(y, self.content_region)
        self._note_layout(layout)
        region = self.content_region
        # the picture covers the tiles only: Sixel is written where they start
        tiles = Region(region.x + layout.left + layout.label_width, region.y, layout.area, region.height)
        return join_line(layout, labels[y], picture.line(y, tiles), width, self.rich_style)

    def _note_layout(self, layout: ClassLayout) -> None:
        """Tell the screen when the classes on screen change (the status panel names them)."""
        assert self._rows is not None
        shown = self._rows.classes[: layout.rows]
        if (self._drawn_layout, self._drawn_classes) != (layout, shown):
            self._drawn_layout, self._drawn_classes = layout, shown
            self.post_message(self.RowsShown(self))

    def _picture(self, width: int, height: int, compose: Compose | None = None,
                 names: tuple[str, ...] = ()) -> Picture | None:
        """The picture in pixels, ``width`` x ``height`` cells, to show, asking for the
        missing ones; None: half blocks. ``compose`` lays a conditional run's tiles out
        (class_grid.py), ``names`` are its rows': a picture of other rows is not shown
        under these names while this one is made."""
        pixels, background = self._pixels, self._background()  # the theme's background is in the picture
        frames = self._sequence if self._sequence is not None else [(self._key, self._images)]
        missing = [(key, images) for key, images in frames
                   if (key, width, height, background, names) not in pixels.ready]
        if missing and not pixels.failed:
            blank = Strip.blank(width, self.rich_style)
            start = next((i for i, (key, _) in enumerate(missing) if key == self._key), 0)
            for key, images in missing[start:] + missing[:start]:  # the one on screen first
                pixels.want((key, width, height, background, names), images, background, blank, compose)
        shown = (self._key, width, height, background, names)
        if self._sequence is not None:
            return None if missing else pixels.get(shown)
        if pixels.get(shown) is not None:
            self._last_picture = shown
        elif self._last_picture is None or self._last_picture[1:] != shown[1:]:
            return None
        return pixels.get(self._last_picture)  # the one before, while this one is made

    def _start_worker(self, work) -> None:
        self.run_worker(work, thread=True, group="pixels", exit_on_error=False)

    def _picture_ready(self) -> None:
        if self._pixels is not None and self._pixels.failed and not self._told_failure:
            self._told_failure = True
            self.notify(f"images in pixels failed ({self._pixels.failed}); showing half blocks",
                        severity="warning", timeout=10)
        self.refresh()

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return container.height
