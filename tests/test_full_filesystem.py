"""A run on a real full filesystem (issue 28): a small tmpfs, filled up after the first
checkpoint and freed again, then filled up before a stop. Mounting needs root (CI runs as
root); elsewhere, or where mounting is not permitted, the test is skipped."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from tui_gan.core.metrics_csv import read_metrics
from tui_gan.core.rundir import RunDir
from tui_gan.service.runfiles import ServiceRecord

from .conftest import TINY, wait

# What these check is a tmpfs filling up under a headless run: the kernel's errors, the same on
# every Python: CI runs them on one (.ci/run). test_disk_full.py's outages run on every Python.
pytestmark = pytest.mark.one_python

#: A row every step (or 0.02 s): a full disk refuses some soon (rows that still fit in the
#: file's last page are taken even by a full tmpfs).
FAST_ROWS = "progress_interval = 0.02\nlog_interval = 0.02\n"
PROGRESS = re.compile(r"^epoch \d+/\d+ step (\d+)/")


@pytest.fixture
def small_fs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(autouse=True)
def private_runtime(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("TUI_GAN_RUNTIME_DIR", str(tmp_path_factory.mktemp("tg")))


class Headless:
    """``tui-gan --headless`` in a process of its own, its lines collected as they come."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "tui_gan", "--headless", *args], text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True).start()

    def line(self, pattern: str, timeout: float = 30.0, after: int = 0) -> str:
        """The first line from the ``after``-th on that matches ``pattern``."""
        return wait(lambda: next((text for text in self.lines[after:] if re.search(pattern, text)), None),
                    timeout, repr(pattern))

    def step(self) -> int:
        """The step of the newest progress line."""
        steps = [int(m[1]) for m in map(PROGRESS.match, self.lines[-20:]) if m]
        return steps[-1] if steps else 0


def fill(mount: Path) -> Path:
    """Write a file until the filesystem is full."""
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    try:
        while True:
            os.write(fd, b"\0")
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui_gan", *args], capture_output=True, text=True, timeout=60)


def temporary_files(run: RunDir) -> list[Path]:
    return [p for p in run.root.rglob("*") if ".tmp-" in p.name or p.name.endswith(".partial")]


def test_a_run_on_a_filesystem_that_fills_up_trains_on_and_stops_truthfully(small_fs, tmp_path):
    run = RunDir(small_fs / "run")
    config = tmp_path / "fast.toml"
    config.write_text(FAST_ROWS)
    service = Headless(*TINY, "--epochs", "100000", "--run-dir", str(run.root), "--config", str(config),
                       "--log-every", "0.2")
    try:
        # full after the first checkpoint: the run trains on and says so, once
        wait(lambda: run.last.exists(), 40, "the first checkpoint")
        filler = fill(small_fs)
        warning = service.line(r"^warning: cannot write ")
        assert f"{run.root}" in warning and "(no space left on device)" in warning and "not saved" in warning
        # a row a step, ~80 bytes: 60 of them fill the last page of metrics.csv, whatever was left in it
        full_from, full_since = read_metrics(run.metrics)[-1].step, time.monotonic()
        wait(lambda: service.step() > full_from + 60 and time.monotonic() > full_since + 1.5, 60,
             "training on the full disk")
        # space comes back: the next save says so, and the rows of the full period are written
        filler.unlink()
        recovered = service.line(r"^writing again: ")
        assert "written late:" in recovered and "metrics rows" in recovered
        rows = read_metrics(run.metrics)
        steps = [r.step for r in rows]
        assert steps == sorted(steps) and any(s > full_from for s in steps)
        # full again, and stopped: the final checkpoint cannot be written, and it says which one is there
        filler = fill(small_fs)
        newest = torch.load(run.last, weights_only=True)["step"]
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(30) == 1
        output = "\n".join(service.lines)
        assert "Traceback" not in output
        assert (f"but the final checkpoint could not be written (no space left on device): the newest complete "
                f"checkpoint is {run.last} (step {newest})") in output
        assert temporary_files(run) == []
        record = ServiceRecord.read(run)
        assert (record.state, record.save_failed, record.checkpoint_step) == (
            "stopped", "no space left on device", newest)
        listed = cli("ls", str(small_fs))
        assert f"(last.pt from step {newest}: final save failed)" in listed.stdout, listed
    finally:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait(10)
    # the newest complete checkpoint is the one sample and --resume take
    filler.unlink()
    grid = tmp_path / "grid.png"
    sampled = cli("sample", str(run.root), "--n", "4", "--out", str(grid))
    assert sampled.returncode == 0 and grid.is_file(), sampled.stderr
    resumed = cli("--headless", "--resume", str(run.root), "--max-steps", str(newest + 3), "--device", "cpu")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resumed from step {newest}" in resumed.stdout and f"finished (max steps): {newest + 3} steps" in resumed.stdout
