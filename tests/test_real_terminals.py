"""The app in real terminals: xterm and kitty, started as they start by default on an X
server of their own (Xvfb), run a tiny training with ``--graphics auto``; one screenshot of
the window, and the samples panel read back from it must show the samples the run wrote
in its grid PNG, in their colours.

Every other test of the drawing stops at what the app writes to a pty; this one sees what
a terminal makes of it. It fails where the app draws in colours the terminal lacks, in
too few of them (xterm at 16 nearest colours, before it was known to draw 24-bit colour:
error 55 where the bound is 4), or sends a terminal pictures it cannot show (kitty 0.26,
which answers kitty's graphics query but has no unicode placeholders, printed them as
text: error 114). docs/pixels.md has the numbers.

The terminals come from apt (real_terminals.APT); a terminal not installed is skipped, unless
TUI_GAN_REAL_TERMINALS names it ("xterm", "kitty" or both, comma-separated), as .ci/run
does: then it must run, and a terminal it does not name is left to another leg.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from . import real_terminals as real

#: Mean absolute error per channel (0-255) after a 2x2 box blur, the panel's tiles against
#: the samples. A terminal in 24-bit colour shows them exactly (0 measured); a tile drawn
#: as its mean colour alone scores about 15 with these samples; 16 colours score 55.
BOUND = 4.0
NATIVE = 16
#: A tiny run: 8 steps, over in a few seconds. The learning rate is the tutorial's x250 so
#: that the samples, after 8 steps, already have contrast and colour (blue and cyan strokes
#: on grey) rather than the untrained generator's flat grey, which any grey would match.
RUN = ["--graphics", "auto", "--image-size", str(NATIVE), "--ngf", "8", "--ndf", "8", "--batch-size", "16",
       "--max-images", "128", "--epochs", "1", "--lr", "0.05", "--quality-images", "0", "--device", "cpu"]
#: The first samples may reach the panel a moment after the PNG is written: screenshots
#: are retaken, a second apart, until they match or this long after the PNG.
SETTLE_S = 10.0


def required() -> set[str] | None:
    """The terminals TUI_GAN_REAL_TERMINALS says must run; None where it is not set."""
    value = os.environ.get("TUI_GAN_REAL_TERMINALS", "").strip()
    return {name.strip() for name in value.split(",") if name.strip()} if value else None


@pytest.mark.parametrize("terminal", sorted(real.COMMANDS))
def test_the_samples_panel_shows_the_samples_in_their_colours(terminal, tmp_path):
    must = required()
    if must is not None and terminal not in must:
        pytest.skip(f"TUI_GAN_REAL_TERMINALS={os.environ['TUI_GAN_REAL_TERMINALS']}: {terminal} runs in another leg")
    missing = real.missing_programs(terminal)
    if missing:
        why = f"{', '.join(missing)} not installed (as root: apt-get install {real.APT})"
        if must is not None:
            pytest.fail(f"TUI_GAN_REAL_TERMINALS names {terminal}, but {why}")
        pytest.skip(why)

    run = tmp_path / "run"
    with real.RealTerminal(terminal, [*RUN, "--run-dir", str(run)], tmp_path) as screen:
        window = screen.wait_for_window(20)
        finals = real.wait_for(lambda: sorted((run / "samples").glob("final-step*.png")), 40,
                               f"the run wrote no final grid ({terminal}.log; {run}/train.log)")
        samples = real.grid_samples(finals[0], NATIVE)
        deadline = time.monotonic() + SETTLE_S
        while True:
            canvas = real.half_cells(screen.screenshot(), window)
            layout = real.locate(canvas, samples)
            error, unblurred = real.tile_error(canvas, samples, layout)
            shown = layout.cols * layout.rows
            if (error <= BOUND and shown >= 9) or time.monotonic() > deadline:
                break
            time.sleep(1.0)

    what = (f"{terminal} ({window.cols}x{window.rows} cells of {window.cell[0]}x{window.cell[1]} px, "
            f"TERM={window.term}, COLORTERM={window.colorterm or 'unset'}): {shown} tiles of {layout.tile} px "
            f"at ({layout.x0}, {layout.y0}), error {error:.1f} (unblurred {unblurred:.1f}); "
            f"the screenshot: {Path(tmp_path, 'shot.png')}")
    assert error <= BOUND, f"the panel's tiles are not the run's samples in their colours: {what}"
    assert shown >= 9, f"the panel shows fewer than 9 of the run's samples: {what}"

