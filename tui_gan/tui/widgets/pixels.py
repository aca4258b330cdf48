"""The samples in real pixels: one picture per panel, through textual-image (kitty's
graphics protocol or Sixel).

The tiles are laid out in the panel's pixels (its cells times a cell's size in pixels), at
their native resolution or whole multiples of it (nearest neighbour: no blur), smaller
only where that is the only way to show enough of them. The picture is encoded off the
event loop, in a thread worker (a 600x480 panel: PNG for kitty about 30-80 ms, Sixel
about 0.4-0.8 s on this 2-core machine), and drawn once made:

- kitty: the image is sent once and the panel's cells hold placeholders that name it
  (textual-image's unicode placeholders), so a redraw of the screen resends nothing;
  a picture no longer shown is deleted from the terminal (``a=d,d=I``).
- Sixel: the encoded picture is kept and written where the panel is each time its last
  line is drawn (Sixel has no ids: text drawn over an image erases it).

textual-image is imported here only, in the worker, never before the first frame.
"""

from __future__ import annotations

import io
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.control import Control
from rich.segment import ControlType, Segment
from textual.geometry import Region
from textual.strip import Strip

from ..terminal_graphics import Graphics
from ..terminal_probe import tmux_passthrough
from .tiles import MIN_TILE, largest_showing

if TYPE_CHECKING:
    import numpy as np

PIXEL_GAP = 2  # pixels between tiles
_NO_MOVE = ((ControlType.CURSOR_FORWARD, 0),)  # marks raw escape sequences: zero cells wide
#: Lays a picture's tiles out: (images, width, height, background) -> an RGB canvas, or None.
Compose = Callable[[Any, int, int, tuple[int, int, int]], Any]


def fit_pixel_grid(n: int, native: int, width: int, height: int, gap: int = PIXEL_GAP) -> tuple[int, int, int]:
    """(columns, rows, tile size) for ``n`` square images of ``native`` pixels in a panel of
    ``width`` x ``height`` pixels.

    All ``n`` at the largest whole multiple of the native size that fits them; where even
    the native size does not fit them all, the largest tiles (native size or less, never
    below MIN_TILE) that show at least 9, else 4, else 1."""
    def layout(tile: int) -> tuple[int, int, int]:
        cols = min(n, (width + gap) // (tile + gap))
        rows = (height + gap) // (tile + gap)
        if cols <= 0 or rows <= 0:
            return 0, 0, tile
        rows = min(rows, -(-n // cols))
        return min(cols, -(-n // rows)), rows, tile  # 16 in 4x4, not 5+5+5+1

    for scale in range(max(1, min(width, height) // native), 0, -1):
        cols, rows, tile = layout(native * scale)
        if cols * rows >= n:
            return cols, rows, tile
    return largest_showing([layout(tile) for tile in range(native, min(native, MIN_TILE) - 1, -1)], n)


def compose_pixels(images: np.ndarray, width: int, height: int, background: tuple[int, int, int],
                   gap: int = PIXEL_GAP) -> np.ndarray | None:
    """uint8 (N, C, H, W) -> an RGB canvas (height, width, 3), or None where no tile fits."""
    import numpy as np

    from ...pictures.grids import paste_tiles

    cols, rows, tile = fit_pixel_grid(images.shape[0], images.shape[-1], width, height, gap)
    if tile == 0:
        return None
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = background
    x0 = (width - (cols * (tile + gap) - gap)) // 2
    y0 = (height - (rows * (tile + gap) - gap)) // 2
    paste_tiles(canvas, images, cols, rows, tile, x0, y0, gap)
    return canvas


@dataclass
class Picture:
    """A panel's picture, made for a size in cells: the lines to draw, and for Sixel the
    data to write over them; for kitty the image's id in the terminal."""

    strips: list[Strip]
    sixel: str | None = None
    kitty_id: int | None = None

    def line(self, y: int, region: Region) -> Strip:
        """Line ``y``; the last carries the Sixel data, written at ``region`` (the panel's
        content on screen), the cursor left where the line goes on."""
        strip = self.strips[y]
        if self.sixel is None or y != len(self.strips) - 1:
            return strip
        return Strip([*strip, Segment(Control.move_to(region.x, region.y).segment.text, None, _NO_MOVE),
                       Segment(self.sixel, None, _NO_MOVE),
                       Segment(Control.move_to(region.right, region.bottom - 1).segment.text, None, _NO_MOVE)],
                     strip.cell_length)


def make_picture(canvas: np.ndarray, mode: str, cols: int, rows: int, blank: Strip, registers: int = 256) -> Picture:
    """Encode ``canvas`` (exactly ``cols`` x ``rows`` cells of pixels) with textual-image.
    Kitty: this sends the image to the terminal (textual-image writes it to stdout). Sixel:
    in at most ``registers`` colours, the terminal's colour registers (a VT340 has 16; more
    colours than registers come out wrong), chosen for the picture by textual-image's quantiser."""
    from PIL import Image
    from rich.console import Console

    console = Console(file=io.StringIO(), width=cols, height=rows, color_system="truecolor", force_terminal=True,
                      legacy_windows=False)
    options = console.options.update(width=cols, height=rows)
    pil = Image.fromarray(canvas)
    if mode == "kitty":
        from textual_image.renderable.tgp import Image as KittyImage

        image = KittyImage(pil, width=cols, height=rows)
        lines = console.render_lines(image, options, pad=False)
        return Picture([Strip(line, cols) for line in lines], kitty_id=image.terminal_image_id)
    from textual_image.renderable.sixel import Image as SixelImage
    from textual_image.renderable.sixel import SixelOptions

    colours = max(2, min(256, registers))
    if colours < 256:  # few registers (a VT340's 16): dithered onto the quantiser's colours, as half blocks are
        pil = pil.quantize(palette=pil.quantize(colors=colours, method=Image.Quantize.FASTOCTREE),
                           dither=Image.Dither.FLOYDSTEINBERG)
    image = SixelImage(pil, width=cols, height=rows, sixel_options=SixelOptions(colors=colours))
    data = [s.text for s in console.render(image, options) if s.text[:2] == "\x1bP"]
    if len(data) != 1:
        raise RuntimeError("textual-image's Sixel renderable did not yield one Sixel image")
    return Picture([blank] * rows, sixel=data[0])


def delete_kitty_images(ids: list[int], out: Any = None) -> None:
    """Free images in the terminal (``d=I``: the placements and the data), the way
    textual-image sends its own commands: straight to stdout, through tmux if there."""
    out = sys.__stdout__ if out is None else out
    commands = "".join(f"\x1b_Ga=d,d=I,i={image_id},q=2\x1b\\" for image_id in ids)
    if commands and out is not None:
        out.write(tmux_passthrough(commands) if os.environ.get("TMUX") else commands)
        out.flush()


class PixelPictures:
    """The pictures of one panel, by (key, columns, rows, ...): made in a thread worker in the
    order asked for, at most ``keep`` asked for and ``keep`` kept (the oldest go, and leave
    the terminal)."""

    def __init__(self, graphics: Graphics, start_worker: Callable[[Callable[[], None]], Any],
                 call_back: Callable[[Callable[[], None]], Any], keep: int = 2) -> None:
        """``start_worker(fn)`` runs ``fn`` in a thread; ``call_back(fn)`` runs ``fn`` on the
        event loop (App.call_from_thread)."""
        self.graphics, self.keep = graphics, keep
        self._start_worker, self._call_back = start_worker, call_back
        self.ready: OrderedDict[Hashable, Picture | None] = OrderedDict()
        self._wanted: OrderedDict[Hashable, tuple[Any, tuple[int, int, int], Strip, Compose]] = OrderedDict()
        self._lock = threading.Lock()
        self._working = False
        self._making: Hashable | None = None  # the picture the worker is making now
        self._forgotten: set[Hashable] = set()  # made for a panel that has left the screen since
        self.failed: str | None = None  # why pictures cannot be made: the panel stays in half blocks
        self.generation = 0  # counts the pictures made (and failures): the panel's cue to choose again
        self.on_ready: Callable[[], None] = lambda: None

    def get(self, key: Hashable) -> Picture | None:
        return self.ready.get(key)

    def want(self, key: Hashable, images: Any, background: tuple[int, int, int], blank: Strip,
             compose: Compose | None = None) -> None:
        """Make the picture for ``key`` = (anything, columns, rows, ...) of ``images``, unless
        it is made or on its way; ``compose(images, width, height, background)`` lays the
        tiles out in pixels (default: compose_pixels, as many as fit)."""
        if self.failed or key in self.ready:
            return
        with self._lock:
            if key == self._making:
                return
            self._wanted[key] = (images, background, blank, compose or compose_pixels)
            while len(self._wanted) > self.keep:
                self._wanted.popitem(last=False)  # stale: newer pictures were asked for since
            if self._working:
                return
            self._working = True
        self._start_worker(self._work)

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._wanted:
                    self._working = False
                    return
                key, (images, background, blank, compose) = self._wanted.popitem(last=False)
                self._making = key
            cols, rows = key[1], key[2]
            width, height = self.graphics.cell
            try:
                canvas = compose(images, cols * width, rows * height, background)
                picture = None if canvas is None else make_picture(canvas, self.graphics.mode, cols, rows, blank,
                                                                     self.graphics.registers)
            except Exception as exc:  # noqa: BLE001 - whatever textual-image raises: the panel keeps half blocks
                with self._lock:
                    self._working, self._making = False, None
                self._call_back(lambda exc=exc: self._fail(exc))
                return
            # None: no tile fits the panel in pixels; it stays in half blocks at this size
            self._call_back(lambda key=key, picture=picture: self._done(key, picture))

    def _done(self, key: Hashable, picture: Picture | None) -> None:
        with self._lock:
            if self._making == key:
                self._making = None
            forgotten = key in self._forgotten
            self._forgotten.discard(key)
        if forgotten:  # the panel left the screen while it was made: it must not stay in the terminal
            if picture is not None and picture.kitty_id is not None:
                delete_kitty_images([picture.kitty_id])
            return
        self.generation += 1
        self.ready[key] = picture
        gone = []
        while len(self.ready) > self.keep:
            _, old = self.ready.popitem(last=False)
            if old is not None and old.kitty_id is not None:
                gone.append(old.kitty_id)
        delete_kitty_images(gone)
        self.on_ready()

    def _fail(self, exc: BaseException) -> None:
        self.generation += 1
        self.failed = f"{type(exc).__name__}: {exc}"
        self.on_ready()

    def forget(self) -> None:
        """Drop every picture (the panel left the screen): free them in the terminal."""
        with self._lock:
            self._wanted.clear()
            if self._making is not None:
                self._forgotten.add(self._making)
        delete_kitty_images([p.kitty_id for p in self.ready.values() if p is not None and p.kitty_id is not None])
        self.ready.clear()
