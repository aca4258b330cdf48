"""The time from a viewer's start to its first frame, in a pty whose far end plays a terminal:
one that answers the graphics probe like kitty, one that answers nothing, and no probe at all.

Not a test (timings on a shared machine make poor assertions): run it by hand, with the
Python whose numbers you want (textual-image installed or not):

    PYTHONPATH=. python docs/experiments/probe_first_frame.py [--runs 5] [--modes auto,blocks]

Each run starts ``commands.app.watch`` (the app as ``tui-gan`` and ``tui-gan attach`` start it, less
the service) in a fresh interpreter and stops the clock when the first frame's "Losses"
title reaches the terminal.
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import signal
import statistics
import subprocess
import sys
import time

VIEWER = """
import sys, time
from tui_gan.commands.app import watch
from tui_gan.core.rundir import RunDir
from tui_gan.tui import terminal_graphics

def connect(leaving):  # a service that never comes: the app waits, showing its first frame
    leaving.wait()

result = terminal_graphics.Choosing.result
def timed_result(self):  # how long the viewer waits for the probe, ready to start Textual
    start = time.perf_counter()
    try:
        return result(self)
    finally:
        with open(sys.argv[3], "w") as out:
            out.write(f"{time.perf_counter() - start} {start - asked}")
terminal_graphics.Choosing.result = timed_result
asked = time.perf_counter()
watch(connect, RunDir(sys.argv[2]), choosing=terminal_graphics.start_choosing(sys.argv[1]))
"""
KITTY = b"\x1b_Gi=31;OK\x1b\\\x1bP>|kitty(0.41.1)\x1b\\\x1b[6;20;10t\x1b[?62;22c"


def first_frame(mode: str, answer: bytes | None, run_dir: str) -> tuple[float, float, float]:
    """Seconds from spawning the viewer to its first frame on the pty; of those, the seconds
    it waited for the probe once Textual was loaded, and the seconds from sending the probe
    (or deciding not to) to having loaded Textual."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "STY", "NO_COLOR", "TEXTUAL_COLOR_SYSTEM")}
    env.update(COLORTERM="truecolor", TERM="xterm-256color", COLUMNS="120", LINES="40")
    start = time.monotonic()
    waited = os.path.join(run_dir, "waited")
    child = subprocess.Popen([sys.executable, "-c", VIEWER, mode, run_dir, waited], stdin=slave, stdout=slave, stderr=slave,
                             env=env, start_new_session=True)
    os.close(slave)
    seen, answered = b"", False
    try:
        while time.monotonic() - start < 20:
            if not select.select([master], [], [], 0.01)[0]:
                continue
            seen += os.read(master, 65536)
            if answer is not None and not answered and b"\x1b[c" in seen:
                os.write(master, answer)
                answered = True
            if b"Losses" in seen:
                elapsed = time.monotonic() - start
                with open(waited) as f:
                    wait, loading = map(float, f.read().split())
                return elapsed, wait, loading
        raise RuntimeError(f"no first frame in 20 s: {seen[-300:]!r}")
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        os.close(master)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--modes", default="auto,blocks")
    args = p.parse_args()
    from tui_gan.tui.terminal_graphics import PROBE_WINDOW_S, textual_image_available

    run_dir = os.path.abspath("runs/first-frame-measure")
    os.makedirs(run_dir, exist_ok=True)
    cases = [(mode, name, answer) for mode in args.modes.split(",")
             for name, answer in (("answers nothing", None), ("answers like kitty", KITTY))
             if mode == "auto" or name == "answers nothing"]
    times: dict[tuple[str, str], list[tuple[float, float, float]]] = {(mode, name): [] for mode, name, _ in cases}
    for _ in range(args.runs):  # interleaved, so a busy moment hits every case alike
        for mode, name, answer in cases:
            times[mode, name].append(first_frame(mode, answer, run_dir))
    print(f"Python {sys.version.split()[0]}, textual-image {'installed' if textual_image_available() else 'absent'}, "
          f"probe window {PROBE_WINDOW_S} s, {args.runs} runs each (median, min-max):")
    for (mode, name), found in times.items():
        frame, waited, loading = ([f[i] for f in found] for i in range(3))
        print(f"  --graphics {mode:6} terminal {name:18}: first frame {statistics.median(frame):.3f} s "
              f"({min(frame):.3f}-{max(frame):.3f}); Textual loaded {1000 * statistics.median(loading):.0f} ms "
              f"after the probe went out; then waited for it {1000 * statistics.median(waited):.0f} ms "
              f"({1000 * min(waited):.0f}-{1000 * max(waited):.0f})")


if __name__ == "__main__":
    main()
