"""The terminal probe: one burst of queries sent before Textual starts, and the answers read
in a thread while the viewer loads Textual (terminal_graphics.py decides from them).

What is asked, in this order, and why each is worth its bytes:

- kitty's graphics query (a 1x1 image to check, not to keep): kitty, Ghostty, WezTerm and
  Konsole answer ``OK``;
- XTVERSION (``CSI > 0 q``): the terminal's name and version, ``kitty(0.26.5)``,
  ``XTerm(379)``, ``tmux 3.3a``. Colour depth says nothing of graphics, and an old kitty
  answers the graphics query all the same, though its unicode placeholders (which the app
  draws with) came in 0.28; the name tells, and over SSH (where COLORTERM is lost) it also
  tells a terminal with 24-bit colour;
- XTSMGRAPHICS (``CSI ? 1 ; 1 ; 0 S``): how many colour registers Sixel has (a VT340 has
  16; a picture with more colours than registers comes out in wrong colours);
- the 16 colours of the palette (OSC 4), only for a 16-colour terminal: half blocks are
  then mapped to the colours the terminal really shows, not to a guess;
- the cell size in pixels (``CSI 16 t``), and last primary device attributes (DA1), which
  every terminal answers, in order: attribute 4 is Sixel, and DA1 ends the wait.

A terminal ignores what it does not know; one that answers nothing is given
``PROBE_WINDOW_S`` from the probe's start (see terminal_graphics.py). Standard library only.
"""

from __future__ import annotations

import os
import re
import select
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

#: Seconds from the probe's start until an unanswered probe counts as "no graphics".
PROBE_WINDOW_S = 1.0

KITTY_QUERY = "\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\"  # a 1x1 image to check, not to keep
VERSION_QUERY = "\x1b[>0q"  # XTVERSION: answered "ESC P >| name(version) ESC \"
REGISTERS_QUERY = "\x1b[?1;1;0S"  # XTSMGRAPHICS, Sixel colour registers: "ESC [ ? 1 ; 0 ; count S"
PALETTE_QUERY = "".join(f"\x1b]4;{n};?\x1b\\" for n in range(16))  # answered "ESC ] 4 ; n ; rgb:r/g/b ST"
CELL_SIZE_QUERY = "\x1b[16t"  # answered "ESC [ 6 ; height ; width t"
DA1_QUERY = "\x1b[c"  # answered "ESC [ ? attributes c"; attribute 4 is Sixel

_DA1 = re.compile(rb"\x1b\[\?([0-9;]*)c")
_KITTY_OK = re.compile(rb"\x1b_G[^\x1b;]*;OK\x1b\\")
_CELL = re.compile(rb"\x1b\[6;(\d+);(\d+)t")
_VERSION = re.compile(rb"\x1bP>\|([^\x1b]*)\x1b\\")
_REGISTERS = re.compile(rb"\x1b\[\?1;0;(\d+)S")
_PALETTE = re.compile(rb"\x1b\]4;(\d+);rgb:([0-9a-fA-F]{1,4})/([0-9a-fA-F]{1,4})/([0-9a-fA-F]{1,4})(?:\x07|\x1b\\)")

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Answer:
    """What the terminal said to the probe."""

    kitty: bool = False
    sixel: bool = False
    cell: tuple[int, int] | None = None  # (width, height) of a cell in pixels
    complete: bool = False  # DA1 came: everything asked before it has been answered
    version: str = ""  # XTVERSION's text, '' where the terminal did not say
    registers: int | None = None  # Sixel's colour registers, where the terminal said
    palette: tuple[RGB, ...] | None = None  # colours 0-15 as the terminal shows them, where it said all 16


def _channel(hex_digits: bytes) -> int:
    """An OSC 4 channel (1 to 4 hex digits, scaled to their own maximum) in 0-255."""
    return round(int(hex_digits, 16) * 255 / (16 ** len(hex_digits) - 1))


def parse_answer(data: bytes) -> Answer:
    da1 = _DA1.search(data)
    cell = _CELL.search(data)
    version = _VERSION.search(data)
    registers = _REGISTERS.search(data)
    colours = {int(m.group(1)): (_channel(m.group(2)), _channel(m.group(3)), _channel(m.group(4)))
               for m in _PALETTE.finditer(data)}
    return Answer(
        kitty=bool(_KITTY_OK.search(data)),
        sixel=bool(da1) and "4" in da1.group(1).decode().split(";"),
        cell=(int(cell.group(2)), int(cell.group(1))) if cell and int(cell.group(1)) and int(cell.group(2)) else None,
        complete=bool(da1),
        version=version.group(1).decode(errors="replace").strip() if version else "",
        registers=int(registers.group(1)) if registers and int(registers.group(1)) > 0 else None,
        palette=tuple(colours[n] for n in range(16)) if all(n in colours for n in range(16)) else None,
    )


def tmux_passthrough(sequence: str) -> str:
    """``sequence`` wrapped so that tmux hands it to the outer terminal (with allow-passthrough)."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def probe_query(multiplexer: str | None, palette: bool = False, kitty: bool = True) -> str:
    """The burst to send; ``palette``: ask for the 16 colours too (a 16-colour terminal);
    ``kitty``: ask kitty's graphics query (through tmux's passthrough in tmux)."""
    query = tmux_passthrough(KITTY_QUERY) if multiplexer == "tmux" else KITTY_QUERY
    return (query if kitty else "") + VERSION_QUERY + REGISTERS_QUERY + (PALETTE_QUERY if palette else "") + CELL_SIZE_QUERY + DA1_QUERY


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

