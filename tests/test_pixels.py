"""Samples in real pixels (tui/widgets/pixels.py): the layout in pixels, the pictures
textual-image makes, and the app in a pty whose far end answers the probe like kitty or
like a Sixel terminal. Tests that need textual-image skip where it is not installed (it
needs Python 3.12); the rest run everywhere. No torch here."""

from __future__ import annotations

import base64
import io
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tui_gan.core import events as ev
from tui_gan.tui.screens.interpolation import InterpolationScreen
from tui_gan.tui.terminal_graphics import Graphics
from tui_gan.tui.widgets import pixels
from tui_gan.tui.widgets.pixels import Picture, compose_pixels, fit_pixel_grid
from tui_gan.tui.widgets.samples import UPPER_HALF, SamplesView

from .app_support import ScriptedEngine, quit_app, wait_until

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER = "\U0010eeee"  # kitty's unicode placeholder


def samples(n: int = 64, channels: int = 3, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, channels, size, size), dtype=np.uint8)


def test_fit_pixel_grid():
    # all 64 at native size where they fit; at whole multiples where there is room
    assert fit_pixel_grid(64, 16, 8 * 18, 8 * 18) == (8, 8, 16)
    assert fit_pixel_grid(64, 16, 8 * 34, 8 * 34) == (8, 8, 32)
    assert fit_pixel_grid(16, 64, 1000, 1000) == (4, 4, 192)
    # too small for all at native size: native tiles while 9 fit, then smaller ones
    assert fit_pixel_grid(64, 64, 200, 200) == (3, 3, 64)
    cols, rows, tile = fit_pixel_grid(64, 64, 120, 120)
    assert cols * rows >= 9 and tile < 64
    assert fit_pixel_grid(64, 64, 6, 6) == (0, 0, 0)  # not even a MIN_TILE tile


def test_compose_pixels_keeps_every_pixel():
    images = samples(4, size=16)
    canvas = compose_pixels(images, 2 * 16 + 2, 2 * 16 + 2, (9, 9, 9))  # exactly 2x2 at native size
    assert canvas.shape == (34, 34, 3)
    assert np.array_equal(canvas[:16, :16], images[0].transpose(1, 2, 0))
    assert np.array_equal(canvas[18:, 18:], images[3].transpose(1, 2, 0))
    assert (canvas[16:18] == 9).all()  # the gap is the background
    big = compose_pixels(images, 3 * 34, 3 * 34, (0, 0, 0))  # room for 3x: nearest neighbour, no blur
    tile = fit_pixel_grid(4, 16, 102, 102)[2]
    assert tile == 48
    x0 = (102 - (2 * 48 + 2)) // 2
    assert np.array_equal(big[x0 : x0 + 48 : 3, x0 : x0 + 48 : 3], images[0].transpose(1, 2, 0))
    gray = compose_pixels(samples(4, channels=1), 34, 34, (0, 0, 0))
    assert (gray[..., 0] == gray[..., 2]).all()
    assert compose_pixels(images, 4, 4, (0, 0, 0)) is None


def test_sixel_data_rides_on_the_last_line():
    from textual.geometry import Region
    from textual.strip import Strip

    picture = Picture([Strip.blank(5)] * 3, sixel="\x1bPq#0~\x1b\\")
    assert picture.line(0, Region(10, 2, 5, 3)) is picture.strips[0]
    last = picture.line(2, Region(10, 2, 5, 3))
    assert last.cell_length == 5  # the escape sequences take no cells
    assert last.text.endswith("\x1b[3;11H\x1bPq#0~\x1b\\\x1b[5;16H")  # to the panel's corner and back


async def test_pixels_that_fail_fall_back_to_half_blocks(attached_app, monkeypatch):
    def broken(*_args):
        raise ImportError("No module named 'textual_image'")

    monkeypatch.setattr(pixels, "make_picture", broken)
    app = attached_app(ScriptedEngine(samples=samples()), graphics=Graphics("kitty", "", (4, 8)))
    async with app.run_test(size=(100, 34)) as pilot:
        view = app.query_one(SamplesView)
        await wait_until(pilot, lambda: view._pixels is not None and view._pixels.failed, what="the failure")
        await pilot.pause(0.1)
        assert UPPER_HALF in view.render_line(view.size.height // 2).text
        assert any("showing half blocks" in str(n.message) for n in app._notifications)
        await quit_app(pilot, app)


# ----------------------------------------------------------------------------- with textual-image


def kitty_images(written: str) -> dict[int, bytes]:
    """The PNGs a stream of kitty graphics commands transmitted, by image id."""
    images, current = {}, None
    for control, payload in re.findall(r"\x1b_G([^;\x1b]*)(?:;([^\x1b]*))?\x1b\\", written):
        keys = dict(kv.split("=") for kv in control.split(","))
        if payload and "a" not in keys:  # a chunk of a transmission (later chunks may name no id)
            current = int(keys.get("i", current))
            images[current] = images.get(current, b"") + base64.b64decode(payload)
    return images


def test_kitty_picture_is_the_canvas_exactly(monkeypatch):
    pytest.importorskip("textual_image")
    from textual.strip import Strip

    from tui_gan.tui.terminal_graphics import hand_over

    hand_over(Graphics("kitty", "", (6, 12)))
    out = io.StringIO()
    monkeypatch.setattr(sys, "__stdout__", out)
    canvas = compose_pixels(samples(), 10 * 6, 5 * 12, (0, 0, 0))
    picture = pixels.make_picture(canvas, "kitty", 10, 5, Strip.blank(10))
    sent = kitty_images(out.getvalue())
    assert list(sent) == [picture.kitty_id]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(sent[picture.kitty_id]))), canvas)  # no resampling
    assert f"a=p,i={picture.kitty_id},c=10,r=5,U=1" in out.getvalue()
    assert len(picture.strips) == 5 and all(s.cell_length == 10 for s in picture.strips)
    assert picture.strips[0].text.count(PLACEHOLDER) == 10
    colour = picture.strips[0]._segments[0].style.color.triplet
    assert (colour.red << 16 | colour.green << 8 | colour.blue) == picture.kitty_id & 0xFFFFFF
    pixels.delete_kitty_images([picture.kitty_id], out)
    assert out.getvalue().endswith(f"\x1b_Ga=d,d=I,i={picture.kitty_id},q=2\x1b\\")


def test_sixel_picture_has_the_panel_size():
    pytest.importorskip("textual_image")
    from textual.strip import Strip

    from tui_gan.tui.terminal_graphics import hand_over

    hand_over(Graphics("sixel", "", (6, 12)))
    canvas = compose_pixels(samples(), 10 * 6, 5 * 12, (0, 0, 0))
    picture = pixels.make_picture(canvas, "sixel", 10, 5, Strip.blank(10))
    assert picture.sixel.startswith("\x1bP") and picture.sixel.endswith("\x1b\\")
    assert '"1;1;60;60' in picture.sixel  # raster attributes: 60 x 60 pixels, 1:1
    assert len(picture.strips) == 5


def test_sixel_picture_keeps_to_the_terminals_colour_registers():
    """A VT340 has 16 registers: a picture that defines more comes out in wrong colours."""
    pytest.importorskip("textual_image")
    from textual.strip import Strip

    from tui_gan.tui.terminal_graphics import hand_over

    hand_over(Graphics("sixel", "", (6, 12)))
    canvas = compose_pixels(samples(), 10 * 6, 5 * 12, (0, 0, 0))
    registers = lambda picture: set(re.findall(r"#(\d+);2;", picture.sixel))  # noqa: E731
    assert len(registers(pixels.make_picture(canvas, "sixel", 10, 5, Strip.blank(10)))) > 16
    assert len(registers(pixels.make_picture(canvas, "sixel", 10, 5, Strip.blank(10), registers=16))) <= 16


async def test_app_replaces_kitty_pictures_and_frees_them(attached_app, monkeypatch):
    pytest.importorskip("textual_image")
    from tui_gan.tui.terminal_graphics import hand_over

    graphics = Graphics("kitty", "kitty (asked for)", (4, 8))
    hand_over(graphics)
    out = io.StringIO()
    monkeypatch.setattr(sys, "__stdout__", out)
    app = attached_app(ScriptedEngine(samples=samples()), graphics=graphics)
    async with app.run_test(size=(100, 34)) as pilot:
        view = app.query_one(SamplesView)
        ready = lambda: [p.kitty_id for p in view._pixels.ready.values() if p is not None]  # noqa: E731
        await wait_until(pilot, lambda: len(ready()) == 1, what="the first picture")
        assert view.border_title == "Samples (fixed noise) · kitty"
        await pilot.pause(0.1)
        assert PLACEHOLDER in view.render_line(0).text
        first = ready()[0]
        for seed in (1, 2):  # new samples: a new picture; the one before the last leaves the terminal
            app.training_screen.show_event(ev.Samples(10 + seed, 0, samples(seed=seed)))
            await wait_until(pilot, lambda seed=seed: len(kitty_images(out.getvalue())) == 1 + seed, what="sent")
        await wait_until(pilot, lambda: first not in ready(), what="the oldest gone")
        assert f"a=d,d=I,i={first}," in out.getvalue()

        # the epoch browser shows an epoch's end in pixels too
        app.training_screen.show_event(ev.EpochEnd(1, 20, "epoch-1.png", "last.pt", samples(seed=7)))
        await pilot.press("left_square_bracket")
        await wait_until(pilot, lambda: len(kitty_images(out.getvalue())) == 4, what="the epoch's picture")

        # the latent walks: every frame made once, shown in half blocks until then
        frames = np.stack([samples(4, seed=s) for s in range(5)])
        app.training_screen.show_event(ev.Interpolation(30, 0, frames))
        await wait_until(pilot, lambda: isinstance(app.screen, InterpolationScreen) and app.screen.query(SamplesView),
                         what="the walks")
        walk = app.screen.query_one(SamplesView)
        assert UPPER_HALF in view.render_line(view.size.height // 2).text  # under the dialog: half blocks
        assert "· kitty" in str(app.screen.query_one("#walk-title").render())
        await wait_until(pilot, lambda: len(walk._pixels.ready) == 5, what="every frame")
        await pilot.pause(0.2)
        assert PLACEHOLDER in walk.render_line(0).text
        walk_ids = [p.kitty_id for p in walk._pixels.ready.values()]
        assert len(kitty_images(out.getvalue())) == 4 + 5  # each frame sent once
        await pilot.press("escape")
        freed = lambda: all(f"a=d,d=I,i={i}," in out.getvalue() for i in walk_ids)  # noqa: E731
        await wait_until(pilot, freed, what="the walks' pictures to leave the terminal")
        assert PLACEHOLDER in view.render_line(0).text  # on top again: pixels
        await quit_app(pilot, app)


def test_the_probe_reads_answers_as_textual_image_does():
    theirs = pytest.importorskip("textual_image._terminal")._parse_probe_response
    from tui_gan.tui.terminal_probe import parse_answer

    for answer in (b"\x1b_Gi=31;OK\x1b\\\x1b[6;20;10t\x1b[?62;22c", b"\x1b[?62;4;22c", b"\x1b[?1;2c",
                   b"\x1b_Gi=31;ENOENT:no\x1b\\\x1b[?64;4c"):
        ours = parse_answer(answer)
        sixel, kitty, width, height = theirs(answer.decode())
        assert (ours.sixel, ours.kitty, ours.cell or (0, 0)) == (sixel, kitty, (width, height)), answer


# ----------------------------------------------------------------------------- the app in a pty

VIEWER = """
import sys
import numpy as np
from tests.app_support import ScriptedEngine
from tui_gan.commands.app import watch
from tui_gan.core.rundir import RunDir
from tui_gan.tui.terminal_graphics import start_choosing

images = np.random.default_rng(0).integers(0, 256, (64, 3, 16, 16), dtype=np.uint8)
watch(lambda leaving: ScriptedEngine(samples=images), RunDir(sys.argv[1]), choosing=start_choosing("auto"))
"""


def app_in_terminal(tmp_path, answer: bytes, until: bytes) -> bytes:
    """Everything the app writes to a pty whose far end answers the probe with ``answer``,
    until the pattern ``until`` has been written (or 30 s)."""
    master, slave = pty_pair()
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "STY", "NO_COLOR", "TEXTUAL_COLOR_SYSTEM")}
    env.update(COLORTERM="truecolor", TERM="xterm-256color", PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", VIEWER, str(tmp_path / "run")], stdin=slave, stdout=slave,
                             stderr=slave, env=env, cwd=ROOT, start_new_session=True)
    os.close(slave)
    seen, deadline = b"", time.monotonic() + 30
    try:
        while not re.search(until, seen) and time.monotonic() < deadline:
            if select.select([master], [], [], 0.05)[0]:
                seen += os.read(master, 1 << 20)
                if b"\x1b[c" in seen and answer:
                    os.write(master, answer)
                    answer = b""
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        os.close(master)
    return seen


def pty_pair() -> tuple[int, int]:
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 120x40, no pixel size
    return master, slave


def test_a_kitty_terminal_gets_the_samples_in_pixels(tmp_path):
    pytest.importorskip("textual_image")
    out = app_in_terminal(tmp_path, b"\x1b_Gi=31;OK\x1b\\\x1bP>|kitty(0.41.1)\x1b\\\x1b[6;20;10t\x1b[?62;22c",
                          re.escape(PLACEHOLDER.encode()))
    assert b"Samples (fixed noise) \xc2\xb7 kitty" in out
    assert b"images: kitty (the terminal answered the probe: kitty 0.41.1)" in out
    assert out.count(b"a=q,t=d,f=24") == 1  # textual-image took the answer: it did not probe again
    sent = kitty_images(out.decode(errors="replace"))
    assert len(sent) == 1
    width, height = Image.open(io.BytesIO(next(iter(sent.values())))).size
    assert width % 10 == 0 and height % 20 == 0  # whole cells of the cell size the terminal told


def test_a_sixel_terminal_gets_the_samples_in_pixels(tmp_path):
    pytest.importorskip("textual_image")
    out = app_in_terminal(tmp_path, b"\x1b[6;20;10t\x1b[?62;4;22c", rb'"1;1;\d+;\d+#')
    assert b"Samples (fixed noise) \xc2\xb7 sixel" in out
    assert out.count(b"a=q,t=d,f=24") == 1
    raster = re.search(rb'\x1bP0;0;0q"1;1;(\d+);(\d+)', out)
    assert raster and int(raster[1]) % 10 == 0 and int(raster[2]) % 20 == 0


def test_a_silent_terminal_gets_half_blocks(tmp_path):
    pytest.importorskip("textual_image")
    out = app_in_terminal(tmp_path, b"", re.escape(UPPER_HALF.encode()))
    assert b"did not answer the graphics probe" in out
    assert b"\x1b_G" not in out.replace(b"\x1b_Gi=31,s=1", b"") and b"\x1bP0;0;0q" not in out
