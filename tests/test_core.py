"""The torch-free core: control requests, the report's lines, history rows, run paths."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tui_gan.core import events as ev
from tui_gan.core.control import Control, LrChange, Requests
from tui_gan.core.history import COLUMNS, HistoryRow, rows_from_table
from tui_gan.core.report import Report, Tone, format_duration
from tui_gan.core.rundir import RunDir, cache_root, dataset_root, decode_cache_dir, new_run_dir


def test_control_hands_over_its_requests_as_one_value_and_clears_them():
    control = Control()
    assert control.take_requests() == Requests()
    control.snapshot()
    control.measure()
    control.set_lr(lr_g=1e-3, now=True)
    assert control.wake.is_set()
    assert control.take_requests() == Requests(snapshot=True, measure=True, lr=LrChange(1e-3, None, True))
    assert control.take_requests() == Requests() and not control.wake.is_set()
    control.export()
    control.interpolate()
    control.set_lr(lr_d=5e-4)
    control.set_lr(lr_g=2e-4)  # the newest change wins
    assert control.take_requests() == Requests(export=True, interpolate=True, lr=LrChange(2e-4, None, False))
    with pytest.raises(ValueError, match="lr_g"):
        control.set_lr(lr_g=math.nan)


def test_control_pause_and_stop():
    control = Control()
    assert control.toggle_pause() and control.paused and control.pause_reason == "requested"
    control.resume()
    assert not control.paused
    control.pause("diverged")
    assert control.paused and control.pause_reason == "diverged"
    control.stop("quit")
    control.stop("app closed")
    assert control.stop_reason == "quit"  # the first reason is kept


def test_history_rows_have_names_and_read_older_checkpoints():
    row = HistoryRow(10, 0, 1.0, 2.0, 0.6, 0.3, 0.2, 2e-4, 2e-4, 400.0, 5.0)
    assert row.loss_g == 2.0 and math.isnan(row.swd) and row.is_training
    assert COLUMNS[:3] == ("step", "epoch", "loss_d") and len(row) == len(COLUMNS)
    quality = HistoryRow.quality(20, 1, 2e-4, 2e-4, 9.0, swd=30.0, diversity=0.9)
    assert not quality.is_training and quality.swd == 30.0
    # a checkpoint written before the quality columns existed
    (old,) = rows_from_table(COLUMNS[:11], [[10.0, 0.0, 1.0, 2.0, 0.6, 0.3, 0.2, 2e-4, 2e-4, 400.0, 5.0]])
    assert old.step == 10 and isinstance(old.step, int) and math.isnan(old.diversity)


def _progress(**changes) -> ev.Progress:
    values = dict(step=20, epoch=0, epoch_step=20, steps_per_epoch=156, total_steps=1560, loss_d=0.5,
                  loss_g=2.25, d_x=0.7, d_g_z1=0.3, d_g_z2=0.2, images_per_sec=412.0, eta_s=95.0,
                  elapsed_s=10.0, lr_g=2e-4, lr_d=2e-4)
    return ev.Progress(**{**values, **changes})


def test_the_report_writes_each_event_once_for_every_viewer():
    report = Report()
    started = ev.Started(device="cpu", preset="cpu", config={"epochs": 5, "image_size": 32, "batch_size": 64,
                                                             "ngf": 32, "ndf": 32},
                         dataset="builtin (10000 glyph images)", dataset_size=10000, steps_per_epoch=156,
                         total_steps=780, run_dir="runs/x", step=0, epoch=0, resumed_from=None, history=[],
                         lr_g=2e-4, lr_d=2e-4, skipped=["a.png"], precision="bf16", precision_why="auto: AMX")
    (first,) = report.lines(started)  # skipped files: the engine's warning says which
    assert first.text == "training on cpu in bf16, preset cpu (32×32, batch 64), data builtin (10000 glyph images)"
    assert first.full().endswith("· bf16 (auto: AMX) · ngf=32, ndf=32 · 156 steps/epoch · run runs/x")
    started.config.update(ema=True, augment=True)
    assert "· bf16 (auto: AMX) · with --ema --augment · ngf=32" in Report().lines(started)[0].full()
    started.config.update(sync_bn=True)  # SyncBatchNorm over several GPUs: a cost the log should name
    assert "· with --ema --augment --sync-bn · ngf=32" in Report().lines(started)[0].full()
    started.config.update(conditional=True, class_names=[str(d) for d in range(10)])
    assert "· with --ema --augment --sync-bn · conditional on 10 classes (0, 1, 2, 3, 4, …) · ngf=32" in (
        Report().lines(started)[0].full())
    (progress,) = report.lines(_progress())
    assert progress.tone is Tone.STATUS and "epoch 1/5 step 20/1560" in progress.text and "ETA 1m35s" in progress.text
    (epoch,) = report.lines(ev.EpochEnd(1, 156, "runs/x/samples/epoch-0001.png", "last.pt"))
    assert epoch.text == "epoch 1/5 done at step 156 · loss_D 0.500 loss_G 2.250 · samples runs/x/samples/epoch-0001.png"
    assert report.lines(ev.Samples(1, 0, None)) == []
    (walks,) = report.lines(ev.Interpolation(3, 0, np.zeros((48, 16, 3, 8, 8), np.uint8)))
    assert walks.text == "latent walks at step 3: 16 walks of 48 frames"
    (done,) = report.lines(ev.Finished("max_steps", 3, 0, 125.0, 399.0, "runs/x/checkpoints/last.pt", None))
    assert done.tone is Tone.DONE
    assert done.text == "finished (max steps): 3 steps, epoch 0/5, 2m05s training, 399 img/s · checkpoint runs/x/checkpoints/last.pt"
    (early,) = report.lines(ev.Finished("quit", 0, 0, 0.0, 0.0, None, None))
    assert early.text == "stopped before training started: quit"
    (error,) = report.lines(ev.Error("out of memory on cpu", None))
    assert error.tone is Tone.ERROR and error.text.endswith("no checkpoint could be saved")


def test_format_duration():
    assert [format_duration(s) for s in (None, math.inf, 42, 185, 3720)] == ["?", "?", "42s", "3m05s", "1h02m"]


def test_run_dir_paths(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.last == tmp_path / "run" / "checkpoints" / "last.pt"
    assert run.epoch_grid(3).name == "epoch-0003.png" and run.export_grid(7).name == "export-step7.png"
    assert run.checkpoint_in() is None
    run.create("seed = 1\n")
    assert run.config.read_text() == "seed = 1\n" and run.samples.is_dir()
    run.last.write_bytes(b"")
    assert run.checkpoint_in() == run.last
    for epoch in (2, 10, 1):
        run.epoch_grid(epoch).write_bytes(b"")
    assert [e for e, _ in run.epoch_grids()] == [1, 2, 10]
    assert RunDir.of_checkpoint(run.snapshot(5)).root == run.root.resolve()
    assert new_run_dir(tmp_path) != new_run_dir(tmp_path / "other")


def test_the_cache_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.delenv("TUI_GAN_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "tui-gan"
    assert decode_cache_dir() == tmp_path / "xdg" / "tui-gan" / "decoded"
    assert dataset_root() == tmp_path / "xdg" / "tui-gan" / "datasets"
    assert dataset_root(str(tmp_path / "mine")) == tmp_path / "mine"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert dataset_root() == Path("~/.cache/tui-gan/datasets").expanduser()
    monkeypatch.setenv("TUI_GAN_CACHE_DIR", str(tmp_path / "decoded-here"))
    assert decode_cache_dir() == tmp_path / "decoded-here"


def test_the_report_ignores_events_it_does_not_know():
    """A newer engine's event must not stop an older viewer (headless would lose the run)."""

    class Unknown:
        pass

    report = Report()
    assert report.lines(Unknown()) == [] and not report.handles(Unknown)


def test_observing_keeps_the_context_without_writing():
    report = Report()
    report.observe(_progress(loss_d=0.25))
    (epoch,) = report.lines(ev.EpochEnd(1, 156, "e.png", "last.pt"))
    assert "loss_D 0.250" in epoch.text
