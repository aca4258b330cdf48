"""The training service as real processes: started, attached, steered, stopped, killed,
resumed; the app hung up in a real pty. Each test starts its own interpreters (torch loads
in a few seconds), with short timeouts."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch

from tui_gan.cli import main
from tui_gan.core import events as ev
from tui_gan.core.rundir import RunDir
from tui_gan.service.client import RemoteRun, connect_to_run
from tui_gan.service.runfiles import ServiceRecord, is_held

from .conftest import LONG, TINY, wait


@pytest.fixture(autouse=True)
def private_runtime(monkeypatch):
    """Sockets in a folder of this test's (short: AF_UNIX paths have a 108-byte limit)."""
    monkeypatch.setenv("TUI_GAN_RUNTIME_DIR", tempfile.mkdtemp(prefix="tg-"))


def start_headless(run: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tui_gan", *TINY, *LONG, "--headless", "--run-dir", str(run), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def wait_training(run: RunDir, process: subprocess.Popen) -> ServiceRecord:
    record = wait(lambda: process.poll() is None and is_held(run) and ServiceRecord.read(run), what="the service")
    wait(lambda: run.metrics.exists() and len(run.metrics.read_text().splitlines()) > 3, what="training")
    return record


def metrics_rows(run: RunDir) -> int:
    return len(run.metrics.read_text().splitlines())


def collect(remote: RemoteRun) -> list:
    events: list = []
    threading.Thread(target=lambda: events.extend(remote.run()), daemon=True).start()
    return events


def first(events: list, kind, timeout: float = 30.0):
    return wait(lambda: next((e for e in list(events) if isinstance(e, kind)), None), timeout, kind.__name__)


def test_a_headless_run_is_attached_steered_listed_and_stopped(tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    service = start_headless(run.root)
    try:
        record = wait_training(run, service)
        assert record.pid == service.pid and Path(record.socket).stat().st_mode & 0o777 == 0o600
        # The first epoch's last.pt, before the pause below (which would keep it from coming):
        # without it the second writer's --resume is refused for that, not for the writer.
        wait(lambda: run.last.exists(), what="the first epoch's checkpoint")

        a, b = (RemoteRun(connect_to_run(run)[0], run) for _ in range(2))
        seen_a, seen_b = collect(a), collect(b)
        assert first(seen_b, ev.Attached).started.run_dir == str(run.root)
        a.control.pause()
        assert first(seen_b, ev.Paused).reason == "requested"
        b.control.set_lr(1e-4, None)
        assert first(seen_a, ev.LrPending).lr_g == 1e-4

        assert main(["ls", str(tmp_path)]) == 0
        assert "run  paused" in capsys.readouterr().out

        # a second writer on the same run is refused, naming the one that trains it
        assert main(["--headless", "--resume", str(run.root)]) == 2
        err = capsys.readouterr().err
        assert f"process {service.pid}" in err and "tui-gan attach" in err and err.count("\n") == 1

        assert main(["stop", str(run.root)]) == 0
        assert "stopped at step" in capsys.readouterr().out
        assert service.wait(30) == 0
        assert first(seen_a, ev.Finished).reason == "tui-gan stop" and first(seen_b, ev.Finished)
        saved = torch.load(run.last, weights_only=True)
        assert saved["step"] == ServiceRecord.read(run).step and ServiceRecord.read(run).state == "stopped"
        assert main(["attach", str(run.root)]) == 2
        assert "is not running (stopped at step" in capsys.readouterr().err
        assert main(["logs", str(run.root)]) == 0
        assert "finished (tui-gan stop)" in capsys.readouterr().out
    finally:
        service.kill()


def test_a_killed_service_is_reported_lost_and_resumes(tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    service = start_headless(run.root)
    wait_training(run, service)
    wait(lambda: run.last.exists(), what="the first epoch's checkpoint")
    service.kill()  # SIGKILL: no chance to save or clean up
    service.wait(10)
    assert main(["ls", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert "run  lost" in listed and "(resume: tui-gan --resume" in listed
    assert main(["attach", str(run.root)]) == 2
    err = capsys.readouterr().err
    assert "was lost" in err and f"tui-gan --resume {run.root}" in err
    # the dead service's lock and socket do not block the resume
    assert main(["--headless", "--device", "cpu", "--resume", str(run.root), "--max-steps", "30"]) == 0
    assert ServiceRecord.read(run).state == "finished"


def test_no_runs_and_not_runs_are_one_line_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for argv in (["attach"], ["attach", str(tmp_path)], ["stop", str(tmp_path / "nope")], ["logs", str(tmp_path)],
                 ["ls", str(tmp_path / "nope")], ["stop"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("tui-gan: error: ") and err.count("\n") == 1, err
    assert main(["ls"]) == 2  # no runs/ here


def read_pty(fd: int) -> None:
    """Drain the app's terminal so its writes never block."""
    while True:
        try:
            if not os.read(fd, 65536):
                return
        except OSError:
            return


@pytest.mark.parametrize("how", ["SIGHUP", "SIGKILL"])
def test_the_training_outlives_its_app(tmp_path, how):
    """The app in a real terminal (a pty), hung up or killed: the service trains on."""
    run = RunDir(tmp_path / "run")
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    app = subprocess.Popen([sys.executable, "-m", "tui_gan", *TINY, *LONG, "--run-dir", str(run.root)],
                           stdin=follower, stdout=follower, stderr=follower, env=env, start_new_session=True)
    os.close(follower)
    threading.Thread(target=read_pty, args=(leader,), daemon=True).start()
    record = None
    try:
        record = wait(lambda: ServiceRecord.read(run), what="the service")
        assert record.pid != app.pid
        wait_training(run, type("P", (), {"poll": lambda self: None})())
        app.send_signal(getattr(signal, how))
        app.wait(15)
        rows = metrics_rows(run)
        wait(lambda: metrics_rows(run) > rows + 5, what="training to go on")
        assert is_held(run) and ServiceRecord.read(run).state == "running"
        assert main(["stop", str(run.root)]) == 0
        wait(lambda: not is_held(run), what="the service to end")
        assert ServiceRecord.read(run).state == "stopped"
    finally:
        app.kill()
        os.close(leader)
        if record is not None and is_held(run):
            os.kill(record.pid, signal.SIGKILL)


def test_a_signal_while_the_service_starts_still_ends_in_a_record(tmp_path):
    """Stopped while torch loads: no checkpoint to write, but not a 'lost' run either."""
    run = RunDir(tmp_path / "run")
    service = start_headless(run.root)
    try:
        wait(lambda: ServiceRecord.read(run), what="the service's record")
        service.send_signal(signal.SIGTERM)
        assert service.wait(30) == 128 + signal.SIGTERM
        assert ServiceRecord.read(run).state == "stopped" and not is_held(run)
    finally:
        service.kill()


@pytest.mark.skipif(os.getuid() != 0, reason="making another user's run needs root")
def test_another_users_run_is_refused_in_one_line(tmp_path, capsys):
    other = tmp_path / "theirs"
    (other / "checkpoints").mkdir(parents=True)
    (other / "config.toml").write_text("")
    os.chmod(other, 0o700)
    os.chown(other, 65534, 65534)
    for argv in (["attach", str(other)], ["stop", str(other)], ["logs", str(other)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "belongs to another user" in err and err.count("\n") == 1


def test_logs_follow_ends_with_the_run(tmp_path):
    run = RunDir(tmp_path / "run")
    service = start_headless(run.root)
    try:
        wait_training(run, service)
        follower = subprocess.Popen([sys.executable, "-m", "tui_gan", "logs", str(run.root), "-f"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert follower.poll() is None  # following while the run trains
        service.send_signal(signal.SIGTERM)
        out, err = follower.communicate(timeout=30)
        assert follower.returncode == 0, err
        assert out.count("training on cpu") == 1 and "finished (terminated (SIGTERM))" in out
    finally:
        service.kill()
