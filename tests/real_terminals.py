"""Helpers for test_real_terminals.py: an X server (Xvfb), a real terminal on it running the
app, one screenshot of the terminal's window (ImageMagick's ``import``), and the samples
panel read back from that screenshot and compared with the PNG grid the run wrote.

The screenshot is read one half cell at a time: a half block's upper half is its
foreground, its lower half its background, so each cell gives two of the panel's pixels.
The panel is located by its tiles: the layout rule is the app's (fit_grid: square tiles of
one size, one pixel apart, in the order of the grid, each row at a cell's top), and where
they sit is found by matching the run's samples, shrunk as the app shrinks them, at every
place, tile size and number of columns.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tui_gan.pictures.grids import paste_tiles
from tui_gan.tui.widgets.tiles import MIN_TILE

#: apt packages that give the tests their terminals: the X server, xterm and its default
#: bitmap font (without xfonts-base its braille is missing), ImageMagick for the screenshot.
APT = "xvfb xterm xfonts-base imagemagick kitty"
#: The terminals, each started as it starts by default but for its size in cells, so that
#: the panel is where the test expects it at a known size: kitty's own (640x400 pixels) is
#: 71x22 cells with the font some machines have and fits two tiles, too few to compare.
COMMANDS = {"xterm": ["xterm", "-geometry", "100x34", "-e"],
            "kitty": ["kitty", "--config", "NONE", "-o", "remember_window_size=no",
                      "-o", "initial_window_width=100c", "-o", "initial_window_height=34c"]}
#: What the app inherits from the test's environment that a terminal would not set: each
#: terminal announces its own colours (xterm sets no COLORTERM, kitty sets truecolor).
UNSET = ("COLORTERM", "NO_COLOR", "FORCE_COLOR", "TEXTUAL_COLOR_SYSTEM", "TMUX", "TMUX_PANE", "STY",
         "TEXTUAL", "TERM_PROGRAM", "KITTY_WINDOW_ID", "WINDOWID", "TERMINFO")
#: Runs in the terminal before the app: records what the window is (X id, cells, pixels)
#: and the app's pid, then becomes the app.
LAUNCH = """
import fcntl, json, os, struct, sys, termios
rows, cols, width, height = struct.unpack("HHHH", fcntl.ioctl(1, termios.TIOCGWINSZ, bytes(8)))
info = dict(pid=os.getpid(), window=os.environ.get("WINDOWID", ""), rows=rows, cols=cols, width=width,
            height=height, term=os.environ.get("TERM", ""), colorterm=os.environ.get("COLORTERM", ""))
with open(sys.argv[1] + ".part", "w") as f:
    json.dump(info, f)
os.replace(sys.argv[1] + ".part", sys.argv[1])
os.execv(sys.executable, [sys.executable, "-m", "tui_gan", *sys.argv[2:]])
"""


def missing_programs(terminal: str) -> list[str]:
    return [p for p in ("Xvfb", "import", COMMANDS[terminal][0]) if shutil.which(p) is None]


def free_display(first: int = 20) -> int:
    """A display number no X server holds (its lock file and socket are absent)."""
    for n in range(first, first + 80):
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            return n
    raise RuntimeError(f"no free X display between :{first} and :{first + 79}")


@dataclass
class Window:
    """The terminal's window as the program in it sees it: its X id, its size in cells and
    in pixels (TIOCGWINSZ; xterm counts its border in), and the app's pid."""

    pid: int
    window: str
    rows: int
    cols: int
    width: int
    height: int
    term: str
    colorterm: str

    @property
    def cell(self) -> tuple[int, int]:
        return self.width // self.cols, self.height // self.rows


class RealTerminal:
    """Xvfb on a free display and ``terminal`` on it running ``python -m tui_gan ARGS``;
    stopped (the app, the terminal, the server) on leaving the with block."""

    def __init__(self, terminal: str, args: list[str], workdir: Path) -> None:
        self.terminal, self.args, self.workdir = terminal, args, workdir
        self.display = f":{free_display()}"
        self.info = workdir / f"{terminal}.json"
        self.procs: list[subprocess.Popen] = []
        self.window: Window | None = None

    def __enter__(self) -> RealTerminal:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        self._spawn(["Xvfb", self.display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"], "xvfb.log")
        socket = Path(f"/tmp/.X11-unix/X{self.display[1:]}")
        wait_for(socket.exists, 10, f"Xvfb {self.display} did not start (xvfb.log)")
        env = {k: v for k, v in os.environ.items() if k not in UNSET}
        # kitty needs OpenGL 3.3, which Xvfb has only in Mesa's software renderer
        env.update(DISPLAY=self.display, LIBGL_ALWAYS_SOFTWARE="1")
        locale = env.get("LC_ALL") or env.get("LC_CTYPE") or env.get("LANG") or ""
        if "utf8" not in locale.lower().replace("-", ""):  # else xterm is not in UTF-8: no half blocks
            env["LC_ALL"] = "C.UTF-8"
        command = [*COMMANDS[self.terminal], sys.executable, "-c", LAUNCH, str(self.info), *self.args]
        self._spawn(command, f"{self.terminal}.log", env=env)

    def _spawn(self, command: list[str], log: str, **options) -> None:
        with open(self.workdir / log, "w") as out:
            self.procs.append(subprocess.Popen(command, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                               cwd=self.workdir, **options))

    def wait_for_window(self, timeout: float) -> Window:
        wait_for(self.info.exists, timeout, f"{self.terminal} did not start the app ({self.terminal}.log)")
        self.window = Window(**json.loads(self.info.read_text()))
        return self.window

    def screenshot(self) -> Image.Image:
        assert self.window is not None
        shot = self.workdir / "shot.png"
        subprocess.run(["import", "-display", self.display, "-window", self.window.window, str(shot)],
                       check=True, capture_output=True, timeout=20)
        return Image.open(shot).convert("RGB")

    def __exit__(self, *exc) -> None:
        if self.window is not None:
            _kill(self.window.pid)  # the app; its training service ends with the run
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass


def wait_for(condition, timeout: float, message: str, every: float = 0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(message)


def half_cells(shot: Image.Image, window: Window) -> np.ndarray:
    """The screen as the half-block pixels it shows: (2 * rows, cols, 3), each the median
    colour of the inside of a cell's upper or lower half (its edges left out, where a
    half's colour may bleed into the next)."""
    pixels = np.asarray(shot)
    cw, ch = window.cell
    left = (pixels.shape[1] - window.cols * cw) // 2  # xterm's border; kitty centres the cells
    top = (pixels.shape[0] - window.rows * ch) // 2
    cells = pixels[top: top + window.rows * ch, left: left + window.cols * cw]
    cells = cells.reshape(window.rows, ch, window.cols, cw, 3)
    half = ch // 2
    inner = slice(1, cw - 1)
    upper = np.median(cells[:, 1: half - 1, :, inner], axis=(1, 3))
    lower = np.median(cells[:, ch - half + 1: ch - 1, :, inner], axis=(1, 3))
    return np.stack([upper, lower], axis=1).reshape(2 * window.rows, window.cols, 3).astype(np.float32)


def grid_samples(path: Path, native: int, padding: int = 2) -> np.ndarray:
    """The samples of a grid PNG the run wrote (pictures/grids.py: ``padding`` pixels
    around and between tiles), as uint8 (N, 3, native, native)."""
    grid = np.asarray(Image.open(path).convert("RGB"))
    cols, rows = (grid.shape[1] - padding) // (native + padding), (grid.shape[0] - padding) // (native + padding)
    tiles = [grid[padding + r * (native + padding):][:native, padding + c * (native + padding):][:, :native]
             for r in range(rows) for c in range(cols)]
    return np.stack(tiles).transpose(0, 3, 1, 2).copy()


def shrunk(samples: np.ndarray, tile: int) -> np.ndarray:
    """Each sample as the panel draws it at ``tile`` pixels (the app's own resize)."""
    out = np.zeros((len(samples), tile, tile, 3), dtype=np.uint8)
    for i in range(len(samples)):
        paste_tiles(out[i], samples[i: i + 1], 1, 1, tile, 0, 0, 0)
    return out.astype(np.float32)


@dataclass
class Layout:
    tile: int
    x0: int
    y0: int
    cols: int
    rows: int

    def at(self, i: int) -> tuple[int, int]:
        row, col = divmod(i, self.cols)
        return self.y0 + row * (self.tile + 1), self.x0 + col * (self.tile + 1)


def _errors(canvas: np.ndarray, tiles: np.ndarray) -> np.ndarray:
    """Mean absolute error of each of ``tiles`` (n, t, t, 3) at every place of ``canvas``: (n, H', W')."""
    t = tiles.shape[1]
    windows = np.lib.stride_tricks.sliding_window_view(canvas, (t, t, 3))[:, :, 0]  # (H', W', t, t, 3)
    return np.stack([np.abs(windows - tile).mean(axis=(2, 3, 4)) for tile in tiles])


def locate(canvas: np.ndarray, samples: np.ndarray, max_cols: int = 8) -> Layout:
    """Where the panel's tiles are: of every tile size, place
    (a row of tiles starts at a cell's top) and number of columns, the one where the first
    two rows of tiles best match the samples they should show; then the rows that follow
    while each of their tiles is, of all the samples, (one of) the closest to its own."""
    native = samples.shape[-1]
    best: tuple[float, Layout] | None = None
    for tile in range(native, MIN_TILE - 1, -1):
        step = tile + 1
        errors = _errors(canvas, shrunk(samples[: 2 * max_cols], tile))
        height, width = errors.shape[1:]
        for cols in range(1, max_cols + 1):
            y_room, x_room = height - step, width - (cols - 1) * step  # places where two rows of cols fit
            if y_room <= 0 or x_room <= 0:
                break
            score = sum(errors[i, (i // cols) * step:][:y_room, (i % cols) * step:][:, :x_room]
                        for i in range(2 * cols)) / (2 * cols)
            score[1::2] = np.inf
            y, x = np.unravel_index(np.argmin(score), score.shape)
            if best is None or score[y, x] < best[0]:
                best = (float(score[y, x]), Layout(tile, int(x), int(y), cols, 2))
    assert best is not None, "the screen is smaller than one tile"
    layout = best[1]
    tiles = shrunk(samples, layout.tile)

    def shows(i: int) -> bool:
        y, x = layout.at(i)
        if y + layout.tile > canvas.shape[0] or x + layout.tile > canvas.shape[1]:
            return False
        errors = np.abs(canvas[y: y + layout.tile, x: x + layout.tile] - tiles).mean(axis=(1, 2, 3))
        return bool(errors[i] <= errors.min() + 1.0)  # samples alike (flat grey ones) tie

    while (layout.rows + 1) * layout.cols <= len(samples) and all(
            shows(layout.rows * layout.cols + j) for j in range(layout.cols)):
        layout.rows += 1
    return layout


def box_blur(tiles: np.ndarray, size: int = 2) -> np.ndarray:
    """(n, t, t, 3) -> each tile averaged over every ``size`` x ``size`` square in it."""
    windows = np.lib.stride_tricks.sliding_window_view(tiles, (size, size), axis=(1, 2))
    return windows.mean(axis=(-2, -1))


def tile_error(canvas: np.ndarray, samples: np.ndarray, layout: Layout) -> tuple[float, float]:
    """(mean absolute error per channel after a 2x2 box blur, the same without blur) of the
    shown tiles against the samples, 0-255."""
    shown = layout.cols * layout.rows
    seen = np.stack([canvas[y: y + layout.tile, x: x + layout.tile] for y, x in map(layout.at, range(shown))])
    wanted = shrunk(samples[:shown], layout.tile)
    return float(np.abs(box_blur(seen) - box_blur(wanted)).mean()), float(np.abs(seen - wanted).mean())
