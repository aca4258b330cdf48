"""The clock against an asynchronous device, with stand-ins for CUDA and MPS: where the
engine takes time off the clock (or ends a stretch of training at a read), it waits for the
device first, so the steps still queued there count as training; never per step, and never
on the CPU. And a process on `--device cuda:N` makes that GPU the current one."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tui_gan.engine import devices
from tui_gan.engine import meter as meter_module
from tui_gan.engine.meter import Meter
from tui_gan.engine.outputs import RunOutputs
from tui_gan.engine.position import Position

from .conftest import tiny_config


@pytest.fixture
def calls(monkeypatch):
    """What happened, in order: 'sync' (the device was waited for), 'clock' (the meter read
    the time) and whatever a test adds; the clock reads 1000, 1001, 1002..."""
    happened: list[str] = []
    ticks = iter(range(1000, 10**6))

    def clock() -> float:
        happened.append("clock")
        return float(next(ticks))

    monkeypatch.setattr(meter_module, "time", SimpleNamespace(perf_counter=clock))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: happened.append("sync"))
    monkeypatch.setattr(torch.mps, "synchronize", lambda: happened.append("sync"))
    return happened


def _meter(device: str) -> Meter:
    """A meter whose accumulators are on the CPU, standing in for one on ``device``."""
    meter = Meter(tiny_config(), torch.device("cpu"), [], 0.0, Path(os.devnull))
    meter.device = torch.device(device)
    return meter


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_a_stretch_off_the_clock_starts_after_the_device_has_run_its_queue(calls, device):
    meter = _meter(device)
    calls.clear()
    meter.add(torch.ones(5))
    meter.add(torch.ones(5))
    assert calls == []  # never per step
    started = meter.start_off_the_clock()
    assert calls == ["sync", "clock"] and started == 1001


def test_samples_are_drawn_off_the_clock_only_once_the_training_steps_ran(calls):
    """RunOutputs.draw: the samples' first read of the device waits for the steps queued
    before it; that wait is training, so the stretch off the clock starts after it."""
    gan = SimpleNamespace(shown="live", netG=None, samples=lambda *generator: calls.append("samples") or "images")
    outputs = RunOutputs(config=tiny_config(), gan=gan, data=None, device=torch.device("cuda"), at=Position(),
                         meter=_meter("cuda"), paths=None, checkpoints=SimpleNamespace(writes=None), guard=None,
                         quality=None)
    calls.clear()
    assert outputs.draw() == "images"
    assert calls[:3] == ["sync", "clock", "samples"]


def test_a_read_on_an_asynchronous_device_ends_its_interval_when_the_steps_are_done(calls):
    """The caller's time was taken before the read waited for the device: the interval (and
    the training time) runs to after the wait, so an epoch's end or a pause after the read
    leaves out no training."""
    meter = _meter("cuda")  # the clock read 1000 at the start
    meter.add(torch.ones(5))
    calls.clear()
    reading = meter.read(1000.5, 1, 0, (2e-4, 2e-4))
    assert calls == ["sync", "clock"] and meter.train_time == 1.0  # 1000 to 1001, not to 1000.5
    assert reading.images_per_sec == tiny_config().batch_size


def test_on_the_cpu_the_clock_never_waits(calls):
    meter = _meter("cpu")
    meter.add(torch.ones(5))
    calls.clear()
    meter.read(1000.5, 1, 0, (2e-4, 2e-4))
    assert calls == [] and meter.train_time == 0.5
    meter.start_off_the_clock()
    assert calls == ["clock"]


@pytest.fixture
def two_gpus(monkeypatch):
    """A stand-in machine with two CUDA GPUs, GPU 0 current; the set_device calls it got."""
    made_current: list[int] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: made_current.append(torch.device("cuda", device).index))
    return made_current


def test_a_process_on_cuda_n_makes_gpu_n_its_current_device(two_gpus):
    """... so that a tensor made with device="cuda", cuDNN's handles and torch.cuda calls
    without a device mean GPU 1. The current GPU is left as it is (no set_device(0): every
    process of a several-GPU run would make a context on GPU 0 before taking its own)."""
    for spec in ("cuda", "cuda:0", "auto"):
        assert devices.resolve_device(spec) == torch.device("cuda", 0)
    assert two_gpus == []
    assert devices.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert two_gpus == [1]
