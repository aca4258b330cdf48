"""How the app chooses to draw images (tui/terminal_graphics.py): the decision, and the
probe against emulated terminals (a pty whose other end answers like kitty, like a Sixel
terminal, or not at all). Standard library only: runs on every Python."""

from __future__ import annotations

import os
import pty
import termios
import threading
import time

import pytest

from tui_gan.commands import app
from tui_gan.commands import flags as training_flags
from tui_gan.core.errors import UserError
from tui_gan.core.rundir import RunDir
from tui_gan.tui import terminal_graphics as tg
from tui_gan.tui import terminal_probe as tp
from tui_gan.tui.terminal_graphics import Graphics, decide
from tui_gan.tui.terminal_probe import Answer, Probe, parse_answer
from tui_gan.tui.terminals import TerminalName, Tmux

KITTY_ANSWER = b"\x1b_Gi=31;OK\x1b\\"
KITTY_041 = b"\x1bP>|kitty(0.41.1)\x1b\\"  # XTVERSION
KITTY_026 = b"\x1bP>|kitty(0.26.5)\x1b\\"
XTERM = b"\x1bP>|XTerm(379)\x1b\\"
REGISTERS_16 = b"\x1b[?1;0;16S"
CELL_ANSWER = b"\x1b[6;18;9t"  # 18 pixels high, 9 wide
DA1_PLAIN = b"\x1b[?62;22c"  # no attribute 4: no Sixel
DA1_SIXEL = b"\x1b[?62;4;22c"
TRUECOLOR = {"COLORTERM": "truecolor", "TERM": "xterm-256color"}


class EmulatedTerminal:
    """A pty; a thread at its far end answers what arrives, in pieces, as a terminal would."""

    def __init__(self, answer: bytes, delay: float = 0.0) -> None:
        self.master, self.slave = pty.openpty()
        self.answer, self.delay = answer, delay
        self.received = b""
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import select

        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not self.received.endswith(tp.DA1_QUERY.encode()):
            if select.select([self.master], [], [], 0.05)[0]:
                self.received += os.read(self.master, 4096)
        time.sleep(self.delay)
        for i in range(0, len(self.answer), 5):  # a few bytes at a time, like a slow link
            os.write(self.master, self.answer[i : i + 5])

    def close(self) -> None:
        self._thread.join(5)
        os.close(self.master)
        os.close(self.slave)


def probe(answer: bytes, window: float = 1.0, delay: float = 0.0) -> tuple[Answer | None, float, EmulatedTerminal]:
    terminal = EmulatedTerminal(answer, delay)
    try:
        echo_before = termios.tcgetattr(terminal.slave)[3] & termios.ECHO
        start = time.monotonic()
        result = Probe(terminal.slave, terminal.slave, tp.probe_query(None), window).start().finish()
        elapsed = time.monotonic() - start
        assert termios.tcgetattr(terminal.slave)[3] & termios.ECHO == echo_before  # the terminal put back
    finally:
        terminal.close()
    return result, elapsed, terminal


def test_parse_answer():
    assert parse_answer(KITTY_ANSWER + CELL_ANSWER + DA1_PLAIN) == Answer(kitty=True, sixel=False, cell=(9, 18),
                                                                          complete=True)
    assert parse_answer(DA1_SIXEL) == Answer(sixel=True, complete=True)
    assert parse_answer(b"\x1b[?64;44c") == Answer(complete=True)  # "44" is not "4"
    assert parse_answer(b"\x1b_Gi=31;EINVAL:bad\x1b\\\x1b[?62c") == Answer(complete=True)
    assert parse_answer(KITTY_ANSWER) == Answer(kitty=True)  # no DA1 yet: not complete
    assert parse_answer(b"\x1b[6;0;0t\x1b[?1;2c").cell is None
    full = parse_answer(KITTY_ANSWER + KITTY_026 + REGISTERS_16 + DA1_PLAIN)
    assert (full.version, full.registers) == ("kitty(0.26.5)", 16)
    assert parse_answer(b"\x1b[?1;3S" + DA1_PLAIN).registers is None  # 3: not in Sixel mode (xterm as a VT420)
    palette = b"".join(b"\x1b]4;%d;rgb:%02x%02x/0000/ffff\x07" % (n, n * 16, n * 16) for n in range(16))
    answer = parse_answer(palette + DA1_PLAIN)
    assert answer.palette[0] == (0, 0, 255) and answer.palette[15] == (240, 0, 255)  # 4 hex digits scaled
    assert parse_answer(b"\x1b]4;1;rgb:cd/00/00\x1b\\" + DA1_PLAIN).palette is None  # one of 16: no palette


def test_terminals_by_name():
    assert TerminalName.parse("kitty(0.26.5)") == TerminalName("kitty", (0, 26, 5))
    assert TerminalName.parse("kitty(0.41.1)").kitty_placeholders and TerminalName.parse("ghostty 1.1.3").kitty_placeholders
    assert TerminalName.parse("kitty(0.26.5)").old_kitty and not TerminalName.parse("kitty(0.28.0)").old_kitty
    assert TerminalName.parse("XTerm(379)").truecolor and not TerminalName.parse("XTerm(330)").truecolor
    assert not TerminalName.parse("tmux 3.3a").truecolor and not TerminalName.parse("").kitty_placeholders
    assert TerminalName.parse("WezTerm 20240203-110809-5046fc22").truecolor


def test_kitty_terminal_answers_in_pieces():
    answer, elapsed, terminal = probe(KITTY_ANSWER + KITTY_041 + CELL_ANSWER + DA1_PLAIN, window=3.0)
    assert terminal.received == (tp.KITTY_QUERY + tp.VERSION_QUERY + tp.REGISTERS_QUERY + tp.CELL_SIZE_QUERY
                                 + tp.DA1_QUERY).encode()
    assert answer == Answer(kitty=True, cell=(9, 18), complete=True, version="kitty(0.41.1)")
    assert elapsed < 2.0  # DA1 ends the wait, not the window
    chosen = decide("auto", answer, available=True, interactive=True, multiplexer=None, colours_24bit=True)
    assert (chosen.mode, chosen.cell, chosen.label) == ("kitty", (9, 18), " · kitty")


def test_sixel_terminal():
    answer, _, _ = probe(DA1_SIXEL)  # a Sixel terminal ignores kitty's query
    assert decide("auto", answer, available=True, interactive=True, multiplexer=None,
                  colours_24bit=True).mode == "sixel"
    # WezTerm answers both; its kitty lacks the placeholders the app needs: Sixel
    both = parse_answer(KITTY_ANSWER + DA1_SIXEL)
    assert decide("auto", both, available=True, interactive=True, multiplexer=None, colours_24bit=True).mode == "sixel"


def test_terminal_that_answers_nothing_costs_the_window_only():
    answer, elapsed, _ = probe(b"", window=0.3)
    assert answer is None
    assert elapsed >= 0.3  # it waited out the window, and then it ended (no answer was waited for)
    chosen = decide("auto", answer, available=True, interactive=True, multiplexer=None, colours_24bit=True)
    assert chosen.mode == "blocks" and "did not answer" in chosen.reason


def test_an_answer_after_the_window_is_not_taken():
    answer, _, _ = probe(KITTY_ANSWER + DA1_PLAIN, window=0.2, delay=0.5)
    assert answer is None


def test_an_old_kitty_keeps_half_blocks_and_says_why():
    """kitty 0.26 answers the graphics query, but shows the placeholders as text."""
    chosen = decide("auto", parse_answer(KITTY_ANSWER + KITTY_026 + DA1_PLAIN), available=True, interactive=True,
                    multiplexer=None, colours_24bit=True)
    assert chosen.mode == "blocks" and "kitty 0.26.5" in chosen.reason and "0.28" in chosen.reason
    # a terminal that answers kitty's query and does not say who it is: not taken on trust
    unnamed = decide("auto", parse_answer(KITTY_ANSWER + DA1_PLAIN), available=True, interactive=True,
                     multiplexer=None, colours_24bit=True)
    assert unnamed.mode == "blocks" and "--graphics kitty" in unnamed.reason


def test_xterm_gets_sixel_in_its_registers_and_24_bit_colour_without_colorterm():
    """xterm sets TERM=xterm and no COLORTERM: 16 colours by the environment, though it
    draws 24-bit colour, and Sixel where started as a VT340."""
    facts = dict(available=True, interactive=True, multiplexer=None, colours_24bit=False)
    vt340 = decide("auto", parse_answer(XTERM + REGISTERS_16 + DA1_SIXEL), **facts)
    assert (vt340.mode, vt340.registers, vt340.truecolor) == ("sixel", 16, True)
    plain = decide("auto", parse_answer(XTERM + DA1_PLAIN), **facts)
    assert (plain.mode, plain.truecolor) == ("blocks", True)
    # without textual-image too: the colours are the terminal's, whatever draws the pictures
    assert decide("auto", parse_answer(XTERM + DA1_PLAIN), **{**facts, "available": False}).truecolor
    # TEXTUAL_COLOR_SYSTEM is the user's word: left alone
    assert not decide("auto", parse_answer(XTERM + DA1_PLAIN), **facts, forced_colours=True).truecolor


def test_an_unnamed_16_colour_terminal_has_its_palette_used():
    palette = b"".join(b"\x1b]4;%d;rgb:%02x/00/00\x1b\\" % (n, n) for n in range(16))
    chosen = decide("auto", parse_answer(palette + DA1_PLAIN), available=True, interactive=True,
                    multiplexer=None, colours_24bit=False)
    assert (chosen.mode, chosen.truecolor) == ("blocks", False) and chosen.palette[3] == (3, 0, 0)


TMUX_IN_NEW_KITTY = Tmux("3.5a", TerminalName.parse("kitty(0.41.1)"), "xterm-kitty",
                         frozenset({"clipboard", "RGB"}), passthrough=True)


@pytest.mark.parametrize("tmux, answer, mode, why", [
    (TMUX_IN_NEW_KITTY, DA1_PLAIN, "kitty", "passthrough"),
    (Tmux("3.5a", TerminalName.parse("XTerm(398)"), "xterm", frozenset({"RGB", "sixel"})), DA1_SIXEL, "sixel", "3.5a"),
    (Tmux("3.3a", TerminalName.parse("XTerm(379)"), "xterm", frozenset({"RGB"})), DA1_PLAIN, "blocks",
     "tmux 3.4+ built with Sixel"),
    (TMUX_IN_NEW_KITTY.__class__("3.3a", TerminalName.parse("kitty(0.41.1)"), "xterm-kitty", frozenset()),
     DA1_PLAIN, "blocks", "set -g allow-passthrough on; set -as terminal-features ',xterm-kitty:RGB'"),
    (Tmux("3.3a", TerminalName.parse("kitty(0.26.5)"), "xterm-kitty", frozenset(), True), DA1_PLAIN, "blocks",
     "kitty 0.28+"),
    (None, DA1_PLAIN, "blocks", "tmux did not report"),
    # tmux 3.5a built with Sixel says so in DA1 in any terminal; kitty has no Sixel
    (TMUX_IN_NEW_KITTY, DA1_SIXEL, "kitty", "passthrough"),
])
def test_in_tmux_what_tmux_reports_decides(tmux, answer, mode, why):
    chosen = decide("auto", parse_answer(answer), available=True, interactive=True, multiplexer="tmux",
                    colours_24bit=False, tmux=tmux)
    assert chosen.mode == mode and why in chosen.reason, chosen
    assert chosen.truecolor == (tmux is not None and tmux.rgb or mode == "kitty")


def test_terminal_without_graphics():
    answer, _, _ = probe(DA1_PLAIN)
    chosen = decide("auto", answer, available=True, interactive=True, multiplexer=None, colours_24bit=True)
    assert chosen.mode == "blocks" and "neither" in chosen.reason


@pytest.mark.parametrize("facts, why", [
    (dict(multiplexer="screen"), "screen"),
    (dict(interactive=False), "not a terminal"),
    (dict(no_colour=True), "NO_COLOR"),
])
def test_auto_keeps_half_blocks(facts, why):
    base = dict(available=True, interactive=True, multiplexer=None, colours_24bit=True)
    chosen = decide("auto", parse_answer(KITTY_ANSWER + DA1_SIXEL), **{**base, **facts})
    assert chosen.mode == "blocks" and why in chosen.reason


def test_without_textual_image_auto_is_silent_and_asking_fails():
    facts = dict(available=False, interactive=True, multiplexer=None, colours_24bit=True)
    assert decide("auto", None, **facts) == Graphics()  # no reason: nothing changes for the user
    assert decide("blocks", None, **{**facts, "available": True}) == Graphics()
    for mode in ("kitty", "sixel"):
        with pytest.raises(UserError, match=r"pip install 'tui-gan\[graphics\]' \(Python 3.12 or newer\)"):
            decide(mode, None, **facts)
    # asked for where it is installed: no answer needed, even in tmux
    chosen = decide("kitty", None, **{**facts, "available": True, "multiplexer": "tmux"}, cell=(8, 16))
    assert (chosen.mode, chosen.cell) == ("kitty", (8, 16))


def start(requested, env, terminal, monkeypatch, available=True, window=0.3):
    monkeypatch.setattr(tg, "textual_image_available", lambda: available)
    monkeypatch.setattr(tg, "kernel_cell_size", lambda fd: None)  # a pty knows no pixels
    stream = os.fdopen(os.dup(terminal.slave), "r")
    try:
        return tg.start_choosing(requested, dict(env), stream, stream, window).result()
    finally:
        stream.close()


def test_start_choosing_probes_where_pixels_or_colours_can_follow(monkeypatch):
    kitty = KITTY_ANSWER + KITTY_041 + CELL_ANSWER + DA1_PLAIN
    in_tmux = {**TRUECOLOR, "TMUX": "/tmp/t,1,0"}
    monkeypatch.setattr(tg, "ask_tmux", lambda env: TMUX_IN_NEW_KITTY)
    # (env, textual-image, what the probe starts with or None, the mode)
    for env, available, sent, mode in [
            (TRUECOLOR, True, tp.KITTY_QUERY, "kitty"),
            ({"TERM": "xterm-256color"}, True, tp.KITTY_QUERY, "kitty"),  # colour depth says nothing of graphics
            ({"TERM": "xterm-256color"}, False, tp.VERSION_QUERY, "blocks"),  # for the colours alone
            (in_tmux, True, tp.VERSION_QUERY, "kitty"),  # tmux's report decides; no kitty query through it
            (TRUECOLOR, False, None, "blocks"),  # nothing to learn
            ({**TRUECOLOR, "TERM": "dumb"}, True, None, "blocks"),
            ({**TRUECOLOR, "STY": "1.pts"}, True, None, "blocks")]:
        terminal = EmulatedTerminal(kitty)
        probes: list[object] = []
        monkeypatch.setattr(tg, "Probe", lambda *args, real=tp.Probe: probes.append(args) or real(*args))
        chosen = start("auto", env, terminal, monkeypatch, available)
        os.write(terminal.slave, tp.DA1_QUERY.encode())  # lets the far end finish when nothing was asked
        terminal.close()
        if sent is None:
            assert not probes and terminal.received == tp.DA1_QUERY.encode(), env
        else:
            assert terminal.received.startswith(sent.encode()) and bool(probes), env
        assert chosen.mode == mode, env
    # a 16-colour terminal is asked for its colours too
    terminal = EmulatedTerminal(DA1_PLAIN)
    start("auto", {"TERM": "xterm"}, terminal, monkeypatch, False)
    terminal.close()
    assert tp.PALETTE_QUERY.encode() in terminal.received


def test_asked_for_in_tmux_probes_through_it_for_the_cell_size(monkeypatch):
    terminal = EmulatedTerminal(CELL_ANSWER + DA1_PLAIN)  # tmux answers DA1 itself; kitty's query goes on
    env = {**TRUECOLOR, "TMUX": "/tmp/t,1,0"}
    chosen = start("kitty", env, terminal, monkeypatch)
    terminal.close()
    assert terminal.received.startswith(b"\x1bPtmux;\x1b\x1b_G")
    assert (chosen.mode, chosen.cell) == ("kitty", (9, 18))


def test_kitty_asked_for_at_256_colours_draws_in_24_bit(monkeypatch):
    monkeypatch.setattr(tg, "textual_image_available", lambda: True)
    env = {"TERM": "xterm-kitty"}
    tg.start_choosing("kitty", env, open(os.devnull), open(os.devnull)).result()
    assert env["COLORTERM"] == "truecolor"  # read by Rich when the app's console is made
    assert tg.truecolor(env) and not tg.truecolor({"TERM": "xterm-kitty"})
    forced = {"TERM": "xterm-kitty", "TEXTUAL_COLOR_SYSTEM": "256"}
    chosen = tg.start_choosing("kitty", forced, open(os.devnull), open(os.devnull)).result()
    assert chosen.mode == "blocks" and "TEXTUAL_COLOR_SYSTEM" in chosen.reason and "COLORTERM" not in forced


def test_the_flag_fails_before_a_service_starts(monkeypatch, tmp_path):
    monkeypatch.setattr(tg, "textual_image_available", lambda: False)
    monkeypatch.setattr(app, "start_service", lambda *a: pytest.fail("a service was started"))
    with pytest.raises(UserError, match=r"--graphics sixel needs textual-image"):
        app.run_app(["--graphics", "sixel"], RunDir(tmp_path / "run"), graphics="sixel")


def test_the_flag_is_not_a_setting_of_the_run():
    """The service is given the viewer's flags: it parses --graphics and leaves it alone."""
    flags = ["--image-size", "16", "--epochs", "3"]
    args = vars(training_flags.train_parser().parse_args([*flags, "--graphics", "kitty"]))
    assert args["graphics"] == "kitty"
    assert "graphics" not in training_flags.flag_settings(args)  # so --resume does not refuse it either
    assert training_flags.build_config(args) == training_flags.build_config(vars(training_flags.train_parser().parse_args(flags)))
    with pytest.raises(UserError, match="invalid choice"):
        training_flags.train_parser().parse_args(["--graphics", "iterm"])


def test_a_kill_during_the_probe_puts_the_terminal_back_first():
    """SIGTERM while the probe waits for a silent terminal: the process dies of it, as it
    would have, but the user's terminal gets its echo back."""
    import signal
    import subprocess
    import sys

    master, slave = pty.openpty()
    try:
        code = ("import sys, time; from tui_gan.tui import terminal_probe as tp; "
                "tp.Probe(0, 1, tp.probe_query(None), 30.0).start(); print('probing', flush=True); time.sleep(30)")
        child = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave)
        seen, deadline = b"", time.monotonic() + 20
        while b"probing" not in seen and time.monotonic() < deadline:
            seen += os.read(master, 4096)
        assert not termios.tcgetattr(slave)[3] & termios.ECHO  # cbreak, no echo: the probe is on
        child.send_signal(signal.SIGTERM)
        assert child.wait(10) == -signal.SIGTERM
        assert termios.tcgetattr(slave)[3] & termios.ECHO  # put back before it died
    finally:
        os.close(master)
        os.close(slave)
