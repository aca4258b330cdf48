"""--checkpoint-every: last.pt between epoch ends, every so many minutes of training, its
state copied at a step boundary and written on a thread; a run resumed from it is the run
that went straight through, bit for bit."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from tui_gan.cli import main
from tui_gan.core import events as ev
from tui_gan.core.errors import UserError
from tui_gan.engine import checkpoint
from tui_gan.engine.checkpoint import CheckpointWriter, load_checkpoint
from tui_gan.engine.engine import Engine
from tui_gan.engine.meter import Meter

from .conftest import EXPLICIT, TINY, tiny_config, wait

ROOT = Path(__file__).resolve().parent.parent


def tensors(value, prefix: str = ""):
    """(path, tensor) for every tensor in a checkpoint's nested dicts and lists."""
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from tensors(item, f"{prefix}/{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from tensors(item, f"{prefix}/{i}")


def assert_same_training_state(a: dict, b: dict) -> None:
    """Every tensor of two checkpoints equal, bit for bit, but the history's (its rows hold
    seconds and img/s); the same position and learning rates."""
    ta, tb = dict(tensors(a)), dict(tensors(b))
    assert set(ta) == set(tb)
    compared = [key for key in ta if not key.startswith("/history")]
    assert len(compared) > 20  # weights, Adam's moments and steps, fixed noise, random states
    unequal = [key for key in compared if not (ta[key].dtype == tb[key].dtype and torch.equal(ta[key], tb[key]))]
    assert not unequal, unequal
    for key in ("step", "epoch", "batch_in_epoch", "lr_g", "lr_d", "pending_lr", "ema_updates"):
        assert a.get(key) == b.get(key), key


# ----------------------------------------------------------------------------- the clock


def test_the_clock_counts_minutes_of_training_only():
    meter = Meter(tiny_config(checkpoint_every=1.0), torch.device("cpu"), [], 0.0, Path(os.devnull))
    now = time.perf_counter()
    assert not meter.checkpoint_due(now) and meter.checkpoint_due(now + 61)
    meter.off_the_clock(time.perf_counter() - 30)  # 30 s saving or sampling: not training
    assert not meter.checkpoint_due(now + 61) and meter.checkpoint_due(now + 92)
    meter.restart_clocks()  # after a pause: the pause is not training either
    now = time.perf_counter()
    assert not meter.checkpoint_due(now + 59) and meter.checkpoint_due(now + 61)
    meter.train_time = 1000.0  # a progress read counted the time
    assert meter.checkpoint_due(now)
    meter.checkpoint_written()
    assert not meter.checkpoint_due(now + 59)
    # a resumed run counts from its checkpoint's training time
    resumed = Meter(tiny_config(checkpoint_every=1.0), torch.device("cpu"), [], 5000.0, Path(os.devnull))
    assert not resumed.checkpoint_due(time.perf_counter() + 59)
    off = Meter(tiny_config(checkpoint_every=0.0), torch.device("cpu"), [], 0.0, Path(os.devnull))
    assert not off.checkpoint_due(time.perf_counter() + 1e9)


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), True, "10"])
def test_checkpoint_every_must_be_minutes(value):
    with pytest.raises(UserError, match="checkpoint_every"):
        tiny_config(checkpoint_every=value).validate()


def test_the_flag_is_saved_and_may_change_on_resume(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TINY, "--max-steps", "2", "--run-dir", str(run), "--checkpoint-every", "2.5", "--headless"]) == 0
    assert "checkpoint_every = 2.5" in (run / "config.toml").read_text()
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["config"]["checkpoint_every"] == 2.5
    assert main(["--resume", str(run), "--max-steps", "3", "--checkpoint-every", "0", "--headless"]) == 0
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["config"]["checkpoint_every"] == 0
    assert main([*TINY, "--checkpoint-every", "-1"]) == 2
    assert "--checkpoint-every: must be a non-negative finite number" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the writer


@pytest.fixture
def held_writes(monkeypatch):
    """save_checkpoint waits for ``release`` before it writes (a slow disk)."""
    release, started = threading.Event(), threading.Event()
    real = checkpoint.save_checkpoint

    def slow(path, state):
        started.set()
        assert release.wait(30)
        return real(path, state)

    monkeypatch.setattr(checkpoint, "save_checkpoint", slow)
    return release, started


def test_a_background_write_keeps_the_state_of_its_step(tmp_path, held_writes):
    release, started = held_writes
    writer, path = CheckpointWriter(), tmp_path / "last.pt"
    live = {"weights": torch.zeros(4), "nested": {"moments": [torch.ones(2)]}}
    assert writer.save_in_background(path, lambda: live)
    assert started.wait(30)
    live["weights"].add_(1)  # the next step changes the live tensors in place
    live["nested"]["moments"][0].mul_(3)
    assert not writer.save_in_background(path, lambda: live)  # one write at a time: skipped, nothing taken
    release.set()
    writer.wait()
    saved = torch.load(path, weights_only=True)
    assert torch.equal(saved["weights"], torch.zeros(4)) and torch.equal(saved["nested"]["moments"][0], torch.ones(2))


def test_a_save_waits_for_the_background_write_and_wins(tmp_path, held_writes):
    release, started = held_writes
    writer, path = CheckpointWriter(), tmp_path / "last.pt"
    assert writer.save_in_background(path, lambda: {"step": 7})
    assert started.wait(30)
    threading.Timer(0.2, release.set).start()
    writer.save(path, 9, lambda: {"step": 9})  # an epoch's end or the finish
    assert torch.load(path, weights_only=True)["step"] == 9
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_a_background_failure_is_raised_in_the_training_thread(tmp_path, monkeypatch):
    """A failed write (a full disk) is the run's WriteWatch's news (core/outage.py), and the
    run goes on; any other failure of the writer's thread is raised in the training thread."""
    writer, path = CheckpointWriter(), tmp_path / "last.pt"
    real = checkpoint.save_checkpoint

    def full(path, state):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_checkpoint", full)
    assert writer.save_in_background(path, lambda: {"step": 1})
    writer.wait()
    assert writer.save_in_background(path, lambda: {"step": 2})  # nothing raised
    writer.wait()
    news = writer.writes.take()
    assert [type(e) for e in news] == [ev.WritesFailing] and news[0].reason == "no space left on device"
    assert news[0].what == "last.pt of step 1"

    def bug(path, state):
        raise TypeError("not a failed write")

    monkeypatch.setattr(checkpoint, "save_checkpoint", bug)
    assert writer.save_in_background(path, lambda: {"step": 3})
    writer.wait()
    with pytest.raises(TypeError, match="not a failed write"):
        writer.save_in_background(path, lambda: {"step": 4})
    # raised once; and a newer write of the same file supersedes a failure not yet raised
    assert writer.save_in_background(path, lambda: {"step": 5})
    writer.wait()
    monkeypatch.setattr(checkpoint, "save_checkpoint", real)
    writer.save(path, 6, lambda: {"step": 6})
    assert writer.save_in_background(path, lambda: {"step": 7})
    writer.wait()
    assert torch.load(path, weights_only=True)["step"] == 7
    assert [type(e) for e in writer.writes.take()] == [ev.WritesRecovered, ev.NewestCheckpoint, ev.NewestCheckpoint]


# ----------------------------------------------------------------------------- exact resume


def test_a_run_resumed_from_a_timed_checkpoint_is_the_straight_run(tmp_path):
    steps, killed_at = 22, 19  # 14 steps an epoch: killed at epoch 1's 5th batch
    straight = Engine(tiny_config(max_steps=steps, checkpoint_every=0), tmp_path / "straight", explicit=EXPLICIT)
    list(straight.run())

    # Due at every step; the hook lets each write finish, so last.pt holds the step before
    # each one. At killed_at, last.pt is what a kill -9 there would leave: kept aside.
    kept = tmp_path / "killed" / "checkpoints" / "last.pt"
    timed: Engine

    def hook(step: int) -> None:
        timed.checkpoints.wait()
        if step == killed_at:
            kept.parent.mkdir(parents=True)
            shutil.copy(timed.paths.last, kept)

    timed = Engine(tiny_config(max_steps=steps, checkpoint_every=1e-9), tmp_path / "timed", explicit=EXPLICIT,
                   before_step=hook)
    list(timed.run())
    state = load_checkpoint(kept)
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (killed_at, 1, 5)  # a timed one, mid-epoch

    resumed = Engine(tiny_config(max_steps=steps, checkpoint_every=1e-9), kept.parent.parent, explicit=EXPLICIT,
                     resume=state)
    list(resumed.run())
    want = torch.load(straight.paths.last, weights_only=True)
    assert_same_training_state(torch.load(resumed.paths.last, weights_only=True), want)
    assert_same_training_state(torch.load(timed.paths.last, weights_only=True), want)  # saving changed nothing


def test_timed_saves_on_their_own_clock_end_with_the_final_state(make_engine, monkeypatch):
    taken = []
    real = CheckpointWriter.save_in_background
    monkeypatch.setattr(CheckpointWriter, "save_in_background",
                        lambda self, *a: taken.append(real(self, *a)) or taken[-1])
    engine = make_engine(max_steps=20, checkpoint_every=1e-6)
    list(engine.run())
    assert any(taken)
    assert torch.load(engine.paths.last, weights_only=True)["step"] == 20
    assert sorted(p.name for p in engine.paths.last.parent.iterdir()) == ["last.pt"]


def test_no_timed_saves_when_off(make_engine, monkeypatch):
    taken = []
    monkeypatch.setattr(CheckpointWriter, "save_in_background", lambda self, *a: taken.append(1))
    list(make_engine(max_steps=20, checkpoint_every=0).run())
    assert not taken


# ----------------------------------------------------------------------------- kill -9


def test_kill_9_mid_epoch_then_resume_continues_from_the_timed_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    argv = [*TINY, "--max-images", "4000", "--epochs", "2", "--checkpoint-every", "0.005", "--run-dir", str(run)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tui_gan", "--headless", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    last = run / "checkpoints" / "last.pt"

    def timed_checkpoint():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        if last.exists():
            state = torch.load(last, weights_only=True)
            return state["batch_in_epoch"] > 0 and state
        return None

    try:
        wait(timed_checkpoint, timeout=60, what="a timed last.pt")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    state = load_checkpoint(last)
    step = state["step"]
    assert 0 < state["batch_in_epoch"] == step < 250  # mid-way through the first epoch (250 steps)
    capsys.readouterr()
    assert main(["--headless", "--resume", str(run), "--max-steps", str(step + 3)]) == 0
    assert f"resumed from step {step}" in capsys.readouterr().out
    assert torch.load(last, weights_only=True)["step"] == step + 3
