"""How the app draws images: real pixels (kitty's graphics protocol, Sixel) or half blocks.

Decided once per viewer process (``tui-gan``, ``tui-gan attach``), from ``--graphics``, the
environment and, for ``auto``, the terminal's answer to one probe. The probe must run
before Textual starts: from then on Textual reads stdin, and a terminal's answer would
reach it as keystrokes. This module is the standard library only (no Textual, no Rich, no
textual-image), so it costs nothing before the first frame and is tested on any Python.

The probe is the one textual-image sends (a kitty graphics query, the cell size in pixels,
then primary device attributes, DA1), read in a thread while the viewer loads Textual.
Every terminal answers DA1 and answers in order, so DA1 ends the wait; a terminal that
answers nothing is given ``PROBE_WINDOW_S`` from the probe's start, so it holds the first
frame back by at most that window less the time the viewer takes to load Textual (the
numbers: docs/benchmark.md, measured with docs/experiments/probe_first_frame.py). Without
textual-image, ``auto`` sends nothing.

An answer that comes after the window reaches Textual as keystrokes (``[``, ``?``, ``c``,
``i``, ``t``: keys that do things), so the window is long enough for slow SSH links (1 s
round trip). It costs nothing where the terminal answers, as every terminal we know
answers DA1 at once; only one that answers nothing at all pays it, once, at start. Over a
link slower than that, ``auto`` keeps half blocks and the late answer may press keys;
there, ``--graphics blocks`` sends no probe, nor do ``kitty`` and ``sixel`` where the
kernel knows the cell size in pixels.
"""

from __future__ import annotations

import importlib.util
import os
import re
import select
import signal
import sys
import threading
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from ..core.errors import UserError

MODES = ("auto", "kitty", "sixel", "blocks")
PIXEL_MODES = ("kitty", "sixel")
#: Seconds from the probe's start until an unanswered probe counts as "no graphics".
PROBE_WINDOW_S = 1.0
EXTRA = "pip install 'tui-gan[graphics]' (Python 3.12 or newer)"
#: textual-image's fallback when the terminal does not say (the VT340's cell).
DEFAULT_CELL = (10, 20)

KITTY_QUERY = "\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\"  # a 1x1 image to check, not to keep
CELL_SIZE_QUERY = "\x1b[16t"  # answered "ESC [ 6 ; height ; width t"
DA1_QUERY = "\x1b[c"  # answered "ESC [ ? attributes c"; attribute 4 is Sixel

_DA1 = re.compile(rb"\x1b\[\?([0-9;]*)c")
_KITTY_OK = re.compile(rb"\x1b_G[^\x1b;]*;OK\x1b\\")
_CELL = re.compile(rb"\x1b\[6;(\d+);(\d+)t")


@dataclass(frozen=True)
class Answer:
    """What the terminal said to the probe."""

    kitty: bool = False
    sixel: bool = False
    cell: tuple[int, int] | None = None  # (width, height) of a cell in pixels
    complete: bool = False  # DA1 came: everything asked before it has been answered


def parse_answer(data: bytes) -> Answer:
    da1 = _DA1.search(data)
    cell = _CELL.search(data)
    return Answer(
        kitty=bool(_KITTY_OK.search(data)),
        sixel=bool(da1) and "4" in da1.group(1).decode().split(";"),
        cell=(int(cell.group(2)), int(cell.group(1))) if cell and int(cell.group(1)) and int(cell.group(2)) else None,
        complete=bool(da1),
    )


def tmux_passthrough(sequence: str) -> str:
    """``sequence`` wrapped so that tmux hands it to the outer terminal (with allow-passthrough)."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def probe_query(multiplexer: str | None) -> str:
    kitty = tmux_passthrough(KITTY_QUERY) if multiplexer == "tmux" else KITTY_QUERY
    return kitty + CELL_SIZE_QUERY + DA1_QUERY


@dataclass(frozen=True)
class Graphics:
    """The decision: ``mode`` is kitty, sixel or blocks; ``reason`` says why, for the event
    log ('' when there is nothing to say); ``cell`` is a cell's size in pixels."""

    mode: str = "blocks"
    reason: str = ""
    cell: tuple[int, int] = DEFAULT_CELL

    @property
    def pixels(self) -> bool:
        return self.mode in PIXEL_MODES

    @property
    def label(self) -> str:
        """' · kitty' or ' · sixel' for the titles of the panels that show pixels; '' for half blocks."""
        return f" · {self.mode}" if self.pixels else ""


def add_graphics_flag(parser: Any) -> None:
    """--graphics on an argparse parser (the train command's and attach's)."""
    parser.add_argument("--graphics", choices=MODES,
                        help="draw the samples in real pixels (kitty's graphics protocol, Sixel) or in half blocks; "
                             "default auto: pixels where the terminal answers the probe. Pixels need "
                             "'pip install tui-gan[graphics]' (Python 3.12 or newer)")


def textual_image_available() -> bool:
    """textual-image is installed where it can be used (its releases need Python 3.12)."""
    return sys.version_info >= (3, 12) and importlib.util.find_spec("textual_image") is not None


def multiplexer_of(env: Mapping[str, str]) -> str | None:
    """tmux or GNU screen between the app and the terminal: they answer DA1 themselves and
    keep images from the terminal unless told to pass them through, which cannot be seen."""
    if env.get("TMUX"):
        return "tmux"
    if env.get("STY") or env.get("TERM", "").startswith("screen"):
        return "screen"
    return None


def truecolor(env: Mapping[str, str]) -> bool:
    """Whether Textual will draw in 24-bit colour: as Rich decides it on POSIX (COLORTERM),
    unless TEXTUAL_COLOR_SYSTEM says. Kitty's placeholders carry the image's id in a 24-bit
    colour, and a 256-colour terminal is taken for one without graphics."""
    forced = env.get("TEXTUAL_COLOR_SYSTEM", "auto")
    if forced != "auto":
        return forced == "truecolor"
    return env.get("COLORTERM", "").strip().lower() in ("truecolor", "24bit")


def decide(requested: str, answer: Answer | None, *, available: bool, interactive: bool,
           multiplexer: str | None, colours_24bit: bool, cell: tuple[int, int] | None = None,
           no_colour: bool = False) -> Graphics:
    """The mode for ``--graphics requested``; ``answer`` is the probe's (None: not probed or
    nothing came back), ``cell`` the cell size the kernel knows (TIOCGWINSZ), if any."""
    cell = cell or (answer.cell if answer else None) or DEFAULT_CELL
    if requested in PIXEL_MODES:
        if not available:
            raise UserError(f"--graphics {requested} needs textual-image: {EXTRA}")
        return Graphics(requested, f"{requested} (asked for)", cell)
    if requested == "blocks" or not available:
        return Graphics()
    if not interactive:
        return Graphics(reason="half blocks: not a terminal")
    if multiplexer:
        return Graphics(reason=f"half blocks: {multiplexer} keeps images from the terminal unless it passes "
                               "them through; then start with --graphics kitty or --graphics sixel")
    if no_colour:  # Textual greys every colour, kitty's placeholders included
        return Graphics(reason="half blocks: NO_COLOR is set")
    if not colours_24bit:
        return Graphics(reason="half blocks: the terminal says it has 256 colours (COLORTERM is not truecolor); "
                               "over SSH, pass COLORTERM on or start with --graphics kitty or sixel")
    if answer is None or not answer.complete:
        return Graphics(reason="half blocks: the terminal did not answer the graphics probe")
    # Sixel first, as textual-image does: WezTerm and Konsole answer kitty's query but do not
    # show its placeholders, which the app needs; kitty and Ghostty have no Sixel.
    if answer.sixel:
        return Graphics("sixel", "sixel (the terminal answered the probe)", cell)
    if answer.kitty:
        return Graphics("kitty", "kitty (the terminal answered the probe)", cell)
    return Graphics(reason="half blocks: the terminal has neither kitty's graphics nor Sixel")


def kernel_cell_size(fd: int) -> tuple[int, int] | None:
    """A cell's size in pixels from TIOCGWINSZ; None where the terminal leaves it 0."""
    try:
        import fcntl
        import struct
        import termios

        rows, cols, width, height = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except (ImportError, OSError):
        return None
    if not (rows and cols and width and height):
        return None
    return width // cols, height // rows


class Probe:
    """The probe, in a thread: ``start`` puts the terminal in cbreak mode (no echo, answers
    readable at once) and sends the query; ``finish`` waits at most until the window ends,
    puts the terminal back and returns the answer (None if nothing came)."""

    def __init__(self, fd_in: int, fd_out: int, query: str, window: float = PROBE_WINDOW_S) -> None:
        self.fd_in, self.fd_out, self.query, self.window = fd_in, fd_out, query, window
        self._data = b""
        self._saved: list | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="tui-gan-graphics-probe", daemon=True)
        self._deadline = 0.0
        self._previous_handlers: dict[int, Any] = {}

    def start(self) -> Probe:
        """Raises OSError where the terminal cannot be set up or written to."""
        import termios
        import tty

        try:
            self._saved = termios.tcgetattr(self.fd_in)
            self._guard_signals()
            tty.setcbreak(self.fd_in, termios.TCSANOW)
            self._deadline = time.monotonic() + self.window
            os.write(self.fd_out, self.query.encode())
        except (OSError, termios.error) as exc:
            self._restore()
            raise OSError(f"the terminal cannot be probed: {exc}") from exc
        self._thread.start()
        return self

    def _read(self) -> None:
        while not self._stop.is_set() and not _DA1.search(self._data):
            left = self._deadline - time.monotonic()
            if left <= 0:
                return
            try:
                ready, _, _ = select.select([self.fd_in], [], [], min(left, 0.05))
                if ready:
                    chunk = os.read(self.fd_in, 4096)
                    if not chunk:
                        return
                    self._data += chunk
            except OSError:
                return

    def finish(self) -> Answer | None:
        self._thread.join(max(0.0, self._deadline - time.monotonic()) + 0.1)
        self._stop.set()
        self._thread.join()
        self._restore()
        return parse_answer(self._data) if self._data else None

    def _guard_signals(self) -> None:
        """Until the terminal is put back, SIGTERM and SIGHUP put it back first (Ctrl+C is a
        KeyboardInterrupt, which ``finish`` or the caller's cancel sees): otherwise a kill
        in the window would leave the user's shell without echo."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                self._previous_handlers[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        previous = self._previous_handlers.get(signum, signal.SIG_DFL)
        self._restore()
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:  # the default: die of it, as without the probe
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def _restore(self) -> None:
        if self._previous_handlers and threading.current_thread() is threading.main_thread():
            for sig, handler in self._previous_handlers.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            self._previous_handlers = {}
        if self._saved is not None:
            import termios

            try:
                termios.tcsetattr(self.fd_in, termios.TCSANOW, self._saved)
            except (OSError, termios.error):
                pass  # the terminal is gone: nothing to put back
            self._saved = None


class Choosing:
    """A decision under way: the probe (if any) runs while the viewer loads Textual."""

    def __init__(self, requested: str, probe: Probe | None, **facts: Any) -> None:
        """``facts``: decide's keyword arguments."""
        self.requested, self.probe, self._facts = requested, probe, facts

    def result(self) -> Graphics:
        """Wait for the probe (at most until its window ends) and decide."""
        answer = self.probe.finish() if self.probe is not None else None
        self.probe = None
        return decide(self.requested, answer, **self._facts)

    def cancel(self) -> None:
        """Something failed before the app started: put the terminal back."""
        if self.probe is not None:
            self.probe.finish()
            self.probe = None


def start_choosing(requested: str, env: MutableMapping[str, str] | None = None, stdin=None, stdout=None,
                   window: float = PROBE_WINDOW_S) -> Choosing:
    """Validate ``--graphics`` and start the probe if the decision needs one; call before
    Textual is imported. Raises UserError for kitty or sixel without textual-image; ``auto``
    without it costs nothing."""
    env = os.environ if env is None else env
    stdin = sys.__stdin__ if stdin is None else stdin
    stdout = sys.__stdout__ if stdout is None else stdout
    available = textual_image_available()
    if requested in PIXEL_MODES and not available:
        raise UserError(f"--graphics {requested} needs textual-image: {EXTRA}")
    interactive = _is_tty(stdin) and _is_tty(stdout) and env.get("TERM", "") != "dumb" and os.name == "posix"
    multiplexer, colours_24bit, no_colour = multiplexer_of(env), truecolor(env), "NO_COLOR" in env
    if requested == "kitty" and not colours_24bit and not no_colour:
        # kitty's placeholders name the image by a 24-bit colour, and every terminal with
        # kitty's graphics has 24-bit colour: Textual reads this when it is imported, after this
        env["TEXTUAL_COLOR_SYSTEM"] = "truecolor"
    cell = kernel_cell_size(stdout.fileno()) if interactive else None
    wanted = available and interactive and (
        (requested == "auto" and multiplexer is None and colours_24bit and not no_colour)
        or (requested in PIXEL_MODES and cell is None))  # asked for: the probe only measures the cell
    probe = None
    if wanted:
        try:
            probe = Probe(stdin.fileno(), stdout.fileno(), probe_query(multiplexer), window).start()
        except OSError:
            probe = None  # the terminal would not be set up: no answer, as if it gave none
    return Choosing(requested, probe, available=available, interactive=interactive, multiplexer=multiplexer,
                    colours_24bit=colours_24bit, cell=cell, no_colour=no_colour)


def _is_tty(stream) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):
        return False


def hand_over(graphics: Graphics) -> None:
    """Before Textual starts, for pixels: textual-image gets the probe's answer. It probes
    the terminal itself when its renderers are first imported (and keeps the result), which
    once Textual reads stdin would hang for seconds and turn the answer into keystrokes;
    given the answer, it asks nothing, and its renderers load later, off the first frame."""
    if not graphics.pixels:
        return
    try:
        from textual_image import _terminal

        _terminal.probe_terminal._result = _terminal.TerminalCapabilities(
            _terminal.CellSize(*graphics.cell), sixel=graphics.mode == "sixel", tgp=graphics.mode == "kitty")
        _terminal.get_cell_size()  # the answer given, or (were it kept elsewhere) its own probe now
    except (ImportError, AttributeError, TypeError):  # a textual-image laid out otherwise
        import textual_image.renderable  # noqa: F401 - its own probe, now, while stdin is free
