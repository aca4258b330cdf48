"""Time to the app's first frame: ``tui-gan`` started in a pseudo-terminal, timed from the
start of the process until the screen's first full frame is written (the loss chart's
title, "Losses", is in the terminal's output), for two checkouts alternated over rounds.

    python docs/experiments/first_frame.py BASELINE_CHECKOUT [THIS_CHECKOUT] [--rounds N] [-- FLAGS...]

Each checkout runs with ``PYTHONPATH`` set to it, so both use this interpreter and its
packages; FLAGS go to both (``--graphics auto`` say, where both know it). The pty answers
no terminal queries, like a terminal without graphics: a probe that waits for an answer
shows up here as its timeout. After the first frame the app gets ``q`` and each run is
given ``--max-steps 1``, so the service it started ends at once. Prints the medians and
their ratio (this / baseline).
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARKER = b"Losses"
TIMEOUT_S = 30.0


def first_frame_seconds(checkout: Path, flags: list[str], runs: Path) -> float:
    """Seconds from the start of ``tui-gan`` to its first frame, in a 120x40 pty."""
    master, slave = pty.openpty()
    os.set_blocking(master, False)
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(checkout), "TERM": "xterm-256color", "COLORTERM": "truecolor"}
    env.pop("TMUX", None)
    run_dir = Path(tempfile.mkdtemp(dir=runs))
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "tui_gan", "--run-dir", str(run_dir), "--max-steps", "1",
                                *flags], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
                               cwd=runs, start_new_session=True)
    os.close(slave)
    seen, elapsed = b"", None
    try:
        while time.perf_counter() - start < TIMEOUT_S:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(master, 1 << 16)
                except OSError:
                    break
                if MARKER in seen:
                    elapsed = time.perf_counter() - start
                    break
        if elapsed is None:
            raise SystemExit(f"no first frame within {TIMEOUT_S:.0f} s from {checkout}: {seen[-300:]!r}")
        os.write(master, b"q")
        deadline = time.perf_counter() + TIMEOUT_S
        while process.poll() is None and time.perf_counter() < deadline:
            select.select([master], [], [], 0.1)
            try:
                os.read(master, 1 << 16)  # keep the pty drained so the app can write
            except OSError:
                pass
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("baseline", type=Path)
    p.add_argument("this", type=Path, nargs="?", default=Path(__file__).resolve().parents[2])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("flags", nargs="*")
    args = p.parse_args()
    times: dict[Path, list[float]] = {args.baseline: [], args.this: []}
    with tempfile.TemporaryDirectory() as runs:
        for _ in range(args.rounds):
            for checkout in times:
                times[checkout].append(first_frame_seconds(checkout.resolve(), args.flags, Path(runs)))
                time.sleep(1.0)  # the service's torch import ends before the next start
    base, this = (statistics.median(times[c]) for c in times)
    for checkout, values in times.items():
        print(f"{str(checkout):<40} median {statistics.median(values) * 1000:6.0f} ms  "
              f"({', '.join(f'{v * 1000:.0f}' for v in values)})")
    print(f"ratio (this / baseline): {this / base:.2f}")


if __name__ == "__main__":
    main()
