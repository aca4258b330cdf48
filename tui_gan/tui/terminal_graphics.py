"""How the app draws images: real pixels (kitty's graphics protocol, Sixel) or half blocks,
and in how many colours.

Decided once per viewer process (``tui-gan``, ``tui-gan attach``), from ``--graphics``, the
environment, tmux's report where the app runs in tmux (terminals.py), and for ``auto`` the
terminal's answers to one probe (terminal_probe.py). The probe must run before Textual
starts: from then on Textual reads stdin, and a terminal's answer would reach it as
keystrokes. This module is the standard library only (no Textual, no Rich, no
textual-image), so it costs nothing before the first frame and is tested on any Python.

The probe is read in a thread while the viewer loads Textual. Every terminal answers DA1
and answers in order, so DA1 ends the wait; a terminal that answers nothing is given
``PROBE_WINDOW_S`` from the probe's start, so it holds the first frame back by at most that
window less the time the viewer takes to load Textual (the numbers: docs/benchmark.md,
measured with docs/experiments/probe_first_frame.py).

An answer that comes after the window reaches Textual as keystrokes (``[``, ``?``, ``c``,
``i``, ``t``: keys that do things), so the window is long enough for slow SSH links (1 s
round trip). It costs nothing where the terminal answers, as every terminal we know
answers DA1 at once; only one that answers nothing at all pays it, once, at start. Over a
link slower than that, ``auto`` keeps half blocks and the late answer may press keys;
there, ``--graphics blocks`` sends no probe, nor do ``kitty`` and ``sixel`` where the
kernel knows the cell size in pixels.

Colour depth says nothing of graphics: the probe goes out whatever COLORTERM says. What it
learns of colour is used too: a terminal that names itself as one with 24-bit colour
(XTVERSION: XTerm, kitty, foot...) gets it though COLORTERM is not set (it is lost over SSH,
and xterm never sets it); a 16-colour one has its half blocks dithered onto the 16 colours
it says it shows.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from ..core.errors import UserError
from .terminal_probe import PROBE_WINDOW_S, RGB, Answer, Probe, probe_query
from .terminals import TerminalName, Tmux, ask_tmux, tmux_settings_for_kitty

MODES = ("auto", "kitty", "sixel", "blocks")
PIXEL_MODES = ("kitty", "sixel")
EXTRA = "pip install 'tui-gan[graphics]' (Python 3.12 or newer)"
#: textual-image's fallback when the terminal does not say (the VT340's cell).
DEFAULT_CELL = (10, 20)
#: Sixel's colour registers where the terminal does not say: textual-image's own default.
DEFAULT_REGISTERS = 256
IN_TMUX = ("tmux 3.4+ built with Sixel draws Sixel; with kitty 0.28+ outside, "
           "'set -g allow-passthrough on' lets kitty's images through")


@dataclass(frozen=True)
class Graphics:
    """The decision: ``mode`` is kitty, sixel or blocks; ``reason`` says why, for the event
    log ('' when there is nothing to say); ``cell`` is a cell's size in pixels;
    ``registers`` Sixel's colour registers; ``truecolor``: draw in 24-bit colour though the
    environment does not say so (the terminal named itself as one that has it);
    ``palette``: the 16 colours a 16-colour terminal shows, where it said."""

    mode: str = "blocks"
    reason: str = ""
    cell: tuple[int, int] = DEFAULT_CELL
    registers: int = DEFAULT_REGISTERS
    truecolor: bool = False
    palette: tuple[RGB, ...] | None = None

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
                             "'pip install tui-gan[graphics]' (Python 3.12 or newer). In tmux: " + IN_TMUX)


def textual_image_available() -> bool:
    """textual-image is installed where it can be used (its releases need Python 3.12)."""
    return sys.version_info >= (3, 12) and importlib.util.find_spec("textual_image") is not None


def multiplexer_of(env: Mapping[str, str]) -> str | None:
    """tmux or GNU screen between the app and the terminal: they answer DA1 themselves and
    keep images from the terminal unless told to pass them through."""
    if env.get("TMUX"):
        return "tmux"
    if env.get("STY") or env.get("TERM", "").startswith("screen"):
        return "screen"
    return None


def colour_depth(env: Mapping[str, str]) -> str:
    """'truecolor', '256' or 'standard' (16): what Textual will draw in, as Rich decides it on
    POSIX (COLORTERM, then TERM's suffix), unless TEXTUAL_COLOR_SYSTEM says."""
    forced = env.get("TEXTUAL_COLOR_SYSTEM", "auto")
    if forced != "auto":
        return {"truecolor": "truecolor", "256": "256"}.get(forced, "standard")
    if env.get("COLORTERM", "").strip().lower() in ("truecolor", "24bit"):
        return "truecolor"
    suffix = env.get("TERM", "").strip().lower().rpartition("-")[2]
    return "256" if suffix in ("256color", "kitty") else "standard"


def truecolor(env: Mapping[str, str]) -> bool:
    return colour_depth(env) == "truecolor"


def decide(requested: str, answer: Answer | None, *, available: bool, interactive: bool,
           multiplexer: str | None, colours_24bit: bool, cell: tuple[int, int] | None = None,
           no_colour: bool = False, forced_colours: bool = False, tmux: Tmux | None = None) -> Graphics:
    """The mode for ``--graphics requested``; ``answer`` is the probe's (None: not probed or
    nothing came back), ``cell`` the cell size the kernel knows (TIOCGWINSZ), if any;
    ``forced_colours``: TEXTUAL_COLOR_SYSTEM sets the depth, which is then left alone;
    ``tmux``: tmux's report, where the app runs in tmux."""
    cell = cell or (answer.cell if answer else None) or DEFAULT_CELL
    registers = min(DEFAULT_REGISTERS, (answer.registers if answer else None) or DEFAULT_REGISTERS)
    name = TerminalName.parse(answer.version) if answer and multiplexer is None else TerminalName()
    # 24-bit colour the environment does not announce: the terminal named itself, or tmux knows
    upgrade = (not colours_24bit and not forced_colours and not no_colour
               and (name.truecolor or (tmux is not None and tmux.rgb)))
    colours_24bit = colours_24bit or upgrade

    def pixels(mode: str, why: str) -> Graphics:
        if mode == "kitty" and not colours_24bit:  # kitty's placeholders name the image by a 24-bit colour
            if forced_colours:
                return Graphics(reason="half blocks: TEXTUAL_COLOR_SYSTEM keeps colours below 24 bits, "
                                       "and kitty's images are named by a 24-bit colour")
            return Graphics(mode, why, cell, registers, truecolor=True)
        return Graphics(mode, why, cell, registers, truecolor=upgrade)

    def blocks(why: str = "") -> Graphics:
        return Graphics(reason=why, truecolor=upgrade,
                        palette=answer.palette if answer and not colours_24bit else None)

    if requested in PIXEL_MODES:
        if not available:
            raise UserError(f"--graphics {requested} needs textual-image: {EXTRA}")
        return pixels(requested, f"{requested} (asked for)")
    if requested == "blocks" or not available:
        return blocks()
    if not interactive:
        return Graphics(reason="half blocks: not a terminal")
    if no_colour:  # Textual greys every colour, kitty's placeholders included
        return blocks("half blocks: NO_COLOR is set")
    if multiplexer == "screen":
        return blocks("half blocks: GNU screen keeps images from the terminal")
    if multiplexer == "tmux":
        return _in_tmux(tmux, pixels, blocks)
    if answer is None or not answer.complete:
        return blocks("half blocks: the terminal did not answer the graphics probe")
    # Sixel first, as textual-image does: WezTerm and Konsole answer kitty's query but do not
    # show its placeholders, which the app needs; kitty and Ghostty have no Sixel.
    if answer.sixel:
        return pixels("sixel", f"sixel (the terminal answered the probe; {registers} colours)")
    if answer.kitty and name.kitty_placeholders:
        return pixels("kitty", f"kitty (the terminal answered the probe: {name})")
    if answer.kitty and name.old_kitty:
        return blocks(f"half blocks: {name} answers kitty's graphics query but has no unicode placeholders, "
                      "which the app draws with (kitty 0.28 brought them)")
    if answer.kitty:
        return blocks(f"half blocks: {name or 'the terminal'} answers kitty's graphics query, but is not known "
                      "to draw its unicode placeholders (kitty 0.28+ and Ghostty do); try --graphics kitty")
    return blocks("half blocks: the terminal has neither kitty's graphics nor Sixel")


def _in_tmux(tmux: Tmux | None, pixels: Any, blocks: Any) -> Graphics:
    """In tmux, what tmux reports decides. Its DA1 says Sixel wherever tmux was built with
    it, whatever the terminal outside (tmux 3.5a in kitty then draws "SIXEL IMAGE" boxes);
    its client's features say "sixel" only where that terminal draws it. kitty's images
    reach the terminal only through passthrough, in 24-bit colour."""
    if tmux is None:
        return blocks("half blocks: tmux did not report on its client; " + IN_TMUX)
    if tmux.sixel:
        return pixels("sixel", f"sixel (tmux {tmux.version} draws it)")
    outer = tmux.outer
    if outer.kitty_placeholders:
        missing = tmux_settings_for_kitty(tmux)
        if not missing:
            return pixels("kitty", f"kitty (through tmux {tmux.version}'s passthrough, to {outer})")
        return blocks(f"half blocks: tmux keeps kitty's images from {outer} until: " + "; ".join(missing))
    if outer.old_kitty:
        return blocks(f"half blocks: {outer} has no unicode placeholders, which images in tmux need (kitty 0.28+)")
    return blocks(f"half blocks: tmux {tmux.version} passes no images to {outer or 'this terminal'}; " + IN_TMUX)


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


class Choosing:
    """A decision under way: the probe (if any) runs while the viewer loads Textual."""

    def __init__(self, requested: str, probe: Probe | None, env: MutableMapping[str, str], **facts: Any) -> None:
        """``facts``: decide's keyword arguments."""
        self.requested, self.probe, self._env, self._facts = requested, probe, env, facts

    def result(self) -> Graphics:
        """Wait for the probe (at most until its window ends) and decide. Where the app is to
        draw in 24-bit colour that the environment does not announce, COLORTERM says so for
        Rich, which reads it when the app's console is made (after this, before the app)."""
        answer = self.probe.finish() if self.probe is not None else None
        self.probe = None
        graphics = decide(self.requested, answer, **self._facts)
        if graphics.truecolor and not truecolor(self._env):
            self._env["COLORTERM"] = "truecolor"
        return graphics

    def cancel(self) -> None:
        """Something failed before the app started: put the terminal back."""
        if self.probe is not None:
            self.probe.finish()
            self.probe = None


def start_choosing(requested: str, env: MutableMapping[str, str] | None = None, stdin=None, stdout=None,
                   window: float = PROBE_WINDOW_S) -> Choosing:
    """Validate ``--graphics`` and start the probe if the decision needs one; call before
    Textual is imported. Raises UserError for kitty or sixel without textual-image."""
    env = os.environ if env is None else env
    stdin = sys.__stdin__ if stdin is None else stdin
    stdout = sys.__stdout__ if stdout is None else stdout
    available = textual_image_available()
    if requested in PIXEL_MODES and not available:
        raise UserError(f"--graphics {requested} needs textual-image: {EXTRA}")
    interactive = _is_tty(stdin) and _is_tty(stdout) and env.get("TERM", "") != "dumb" and os.name == "posix"
    multiplexer, depth, no_colour = multiplexer_of(env), colour_depth(env), "NO_COLOR" in env
    forced = env.get("TEXTUAL_COLOR_SYSTEM", "auto") != "auto"
    tmux = ask_tmux(env) if multiplexer == "tmux" and interactive and requested == "auto" else None
    cell = kernel_cell_size(stdout.fileno()) if interactive else None
    # auto asks where pixels may follow, or where the answer may lift the colours (a terminal
    # that names itself; a 16-colour one's palette); never through GNU screen, nor NO_COLOR
    wanted = interactive and (
        (requested == "auto" and multiplexer != "screen" and not no_colour
         and (available or (depth != "truecolor" and not forced and multiplexer is None)))
        or (requested in PIXEL_MODES and cell is None))  # asked for: the probe only measures the cell
    probe = None
    if wanted:
        # in tmux, auto does not send kitty's query through: an answer could come after DA1
        # (which tmux answers at once) and reach Textual as keys; tmux's report tells instead
        query = probe_query(multiplexer, palette=depth == "standard",
                            kitty=available and not (multiplexer == "tmux" and requested == "auto"))
        try:
            probe = Probe(stdin.fileno(), stdout.fileno(), query, window).start()
        except OSError:
            probe = None  # the terminal would not be set up: no answer, as if it gave none
    return Choosing(requested, probe, env, available=available, interactive=interactive, multiplexer=multiplexer,
                    colours_24bit=depth == "truecolor", cell=cell, no_colour=no_colour, forced_colours=forced,
                    tmux=tmux)


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
