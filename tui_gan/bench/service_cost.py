"""``tui-gan bench --attached``: the training speed of a service with the app attached,
against ``--headless``, as separate processes, alternated over several rounds.

Each round trains the same settings twice from scratch: once ``tui-gan --headless`` alone,
once ``tui-gan`` (the service and the app, the app drawing into a pseudo-terminal of the
given size that this process reads, as a terminal emulator would). The speed of each is
the one its service recorded when it finished (service.json: the Finished event's img/s,
training time only). Separate runs differ by a few per cent from run to run, so the rounds
alternate which goes first and the ratio is of the medians.
"""

from __future__ import annotations

import fcntl
import os
import pty
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

from ..core.errors import UserError
from ..core.rundir import RunDir
from ..service.runfiles import ServiceRecord


def attached_bench(flags: list[str], rounds: int, size: tuple[int, int] = (120, 40), timeout: float = 1800) -> int:
    """Print each round's two speeds and the ratio (attached over headless) of the medians."""
    speeds: dict[str, list[float]] = {"headless": [], "attached": []}
    with tempfile.TemporaryDirectory(prefix="tui-gan-bench-") as folder:
        for r in range(rounds):
            order = ("headless", "attached") if r % 2 == 0 else ("attached", "headless")
            for kind in order:
                run = RunDir(Path(folder) / f"{kind}-{r}")
                speed = (run_headless(flags, run, timeout) if kind == "headless"
                         else run_attached(flags, run, size, timeout))
                speeds[kind].append(speed)
                print(f"  round {r + 1} {kind:<8} {speed:9,.0f} img/s", flush=True)
    headless, attached = (statistics.median(speeds[k]) for k in ("headless", "attached"))
    print(f"tui-gan bench --attached · {' '.join(flags)} · {rounds} rounds · app at {size[0]}x{size[1]}")
    print(f"  headless  {headless:9,.0f} img/s (median)")
    print(f"  attached  {attached:9,.0f} img/s (median)")
    print(f"  ratio     {attached / headless:9.3f}x")
    return 0


def run_headless(flags: list[str], run: RunDir, timeout: float) -> float:
    process = subprocess.run([sys.executable, "-m", "tui_gan", *flags, "--headless", "--run-dir", str(run.root)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if process.returncode != 0:
        raise UserError(f"the headless run failed: {process.stderr.strip().splitlines()[-1:]}")
    return finished_speed(run)


def run_attached(flags: list[str], run: RunDir, size: tuple[int, int], timeout: float) -> float:
    """The app (and its service) in a pseudo-terminal until the run finishes; then the app
    is hung up (the service has ended by then)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    env = {**os.environ, "TERM": os.environ.get("TERM", "xterm-256color")}
    app = subprocess.Popen([sys.executable, "-m", "tui_gan", *flags, "--run-dir", str(run.root)],
                           stdin=follower, stdout=follower, stderr=follower, env=env, start_new_session=True)
    os.close(follower)
    threading.Thread(target=_drain, args=(leader,), daemon=True).start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = ServiceRecord.read(run)
            if record is not None and record.state != "running":
                return finished_speed(run)
            if app.poll() is not None and record is None:
                raise UserError(f"the app exited ({app.returncode}) before its service started")
            time.sleep(0.2)
        raise UserError(f"the attached run did not finish within {timeout:.0f} s")
    finally:
        app.terminate()
        app.wait(10)
        os.close(leader)


def _drain(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 1 << 16):
                return
        except OSError:
            return


def finished_speed(run: RunDir) -> float:
    record = ServiceRecord.read(run)
    if record is None or not record.images_per_sec:
        raise UserError(f"{run.root}: the run recorded no speed (see its train.log)")
    return record.images_per_sec
