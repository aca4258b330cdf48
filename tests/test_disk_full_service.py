"""The service on a run directory that stops taking writes (issue 28): train.log keeps its
lines for later, service.json is still written on a full disk, a final save that failed
is a non-zero exit and a record ``ls`` shows truthfully, and a resume that fails in its
setup leaves the run's record as it was."""

from __future__ import annotations

import errno
import json
import os
import time

import pytest

from tui_gan.commands.runs import ls_line
from tui_gan.core import events as ev
from tui_gan.core.errors import UserError
from tui_gan.core.rundir import RunDir
from tui_gan.core.runview import Outcome
from tui_gan.core.writes import AppendFile
from tui_gan.service import runfiles
from tui_gan.service.printer import LogFile, Printer
from tui_gan.service.runfiles import ServiceRecord
from tui_gan.service.training import serve_run

from .app_support import ScriptedEngine


def no_space(*args, **kwargs):  # noqa: ANN002, ANN003 - stands in for any write
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_train_log_keeps_the_lines_a_full_disk_refuses_and_writes_them_later(tmp_path, monkeypatch):
    path = tmp_path / "train.log"
    log = LogFile(AppendFile(path))
    printer = Printer([log], log_every=60)
    printer.line("one")
    real = os.write
    monkeypatch.setattr(os, "write", no_space)
    printer.line("two")
    printer.line("three")
    assert printer.outs == [log] and path.read_text() == "one\n"  # not given up, nothing half written
    monkeypatch.setattr(os, "write", real)
    printer.line("four")
    assert path.read_text() == "one\ntwo\nthree\nfour\n"
    monkeypatch.setattr(os, "write", no_space)
    monkeypatch.setattr(LogFile, "MAX_HELD", 12)
    for n in range(10):
        printer.line(f"line {n}")  # 7 characters each: the oldest are dropped, whole lines
    monkeypatch.setattr(os, "write", real)
    log.close()
    assert path.read_text().splitlines()[4:] == [
        "[9 log line(s) lost while the disk took no writes]", "line 9"]


def test_a_service_whose_output_is_a_file_writes_it_as_a_log_file(tmp_path):
    with open(tmp_path / "train.log", "a", encoding="utf-8") as out:
        assert isinstance(LogFile.of(out), LogFile)
    with open(os.devnull, "w") as null:
        assert LogFile.of(null) is null


def test_the_record_is_written_in_place_when_the_disk_is_full(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    record = ServiceRecord(pid=1, socket="s")
    assert record.write(run) is None
    monkeypatch.setattr(runfiles, "atomic_write_text", no_space)
    record.end(Outcome("stopped", "terminated (SIGTERM)", "", 57, 3, 100.0, "no space left on device",
                       str(run.last), 32))
    assert record.write(run) is None
    back = ServiceRecord.read(run)
    assert (back.state, back.step, back.save_failed, back.checkpoint_step) == (
        "stopped", 57, "no space left on device", 32)
    assert [p.name for p in tmp_path.iterdir()] == ["service.json"]
    monkeypatch.setattr(runfiles, "_overwrite", no_space)  # (and when even that fails, it says why)
    assert record.write(run) == "no space left on device"


def test_ls_shows_a_run_whose_final_save_failed(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create("epochs = 5\n")
    record = ServiceRecord(pid=1, socket="s")
    record.end(Outcome("stopped", "terminated (SIGTERM)", "", 57, 3, 100.0, "no space left on device",
                       str(run.last), 32))
    line = ls_line(run, "stopped", record, [])
    assert line.split()[1:4] == ["stopped", "step", "57"] and line.endswith("(last.pt from step 32: final save failed)")
    record.checkpoint = None
    assert ls_line(run, "stopped", record, []).endswith("(no checkpoint: final save failed, no space left on device)")


class UnsavedEnd(ScriptedEngine):
    """A scripted run whose final checkpoint could not be written."""

    def run(self):
        for event in super().run():
            if isinstance(event, ev.Finished):
                event.checkpoint_path, event.save_failed, event.checkpoint_step = "/r/last.pt", "disk quota exceeded", 9
            yield event


def test_a_final_save_that_failed_exits_non_zero_and_is_recorded(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TUI_GAN_RUNTIME_DIR", str(tmp_path / "sockets"))
    run = RunDir(tmp_path / "run")
    engine = UnsavedEnd(run_dir=str(run.root))
    engine.control.stop("stopped")
    assert serve_run(run, lambda control: engine, Printer([], 60), as_service=True) == 1
    record = json.loads(run.service_record.read_text())
    assert (record["state"], record["save_failed"], record["checkpoint"], record["checkpoint_step"]) == (
        "stopped", "disk quota exceeded", "/r/last.pt", 9)


def test_a_resume_that_fails_in_its_setup_leaves_the_runs_record_as_it_was(tmp_path, monkeypatch):
    monkeypatch.setenv("TUI_GAN_RUNTIME_DIR", str(tmp_path / "sockets"))
    run = RunDir(tmp_path / "run")
    run.create("epochs = 5\n")
    stopped = ServiceRecord(pid=1, socket="s")
    stopped.end(Outcome("stopped", "tui-gan stop", "", 57, 3, 100.0))
    stopped.write(run)

    def prepare(control):  # noqa: ANN001
        raise UserError("checkpoints/last.pt: not a readable tui-gan checkpoint")

    with pytest.raises(UserError):
        serve_run(run, prepare, Printer([], 60), as_service=True)
    record = ServiceRecord.read(run)
    assert (record.state, record.step) == ("stopped", 57)


class FullDiskRun(ScriptedEngine):
    """A scripted run on a disk that filled after its checkpoint of step 14, stopped there."""

    def run(self):
        for event in super().run():
            if isinstance(event, ev.Finished):
                event.checkpoint_path, event.save_failed, event.checkpoint_step = (
                    f"{self.run_dir}/checkpoints/last.pt", "no space left on device", 14)
            yield event
            if isinstance(event, ev.Started):
                yield ev.NewestCheckpoint(14, f"{self.run_dir}/checkpoints/last.pt", time.time() - 185)
                yield ev.WritesFailing(f"{self.run_dir}/metrics.csv", "no space left on device",
                                       "metrics rows from step 20", time.time() - 60)


async def test_the_app_shows_the_outage_and_a_q_on_a_full_disk_exits_1(attached_app):
    from tui_gan.tui.state import RunState
    from tui_gan.tui.widgets.status import StatusPanel

    from .app_support import quit_app, wait_until

    app = attached_app(FullDiskRun(run_dir="runs/demo"), run_name="demo")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.state is RunState.TRAINING and app.training_screen.view.writes_failing,
                         what="the outage")
        await pilot.pause(0.1)
        log = "".join(line.text for line in app.training_screen.event_log.lines)
        assert "warning: cannot write runs/demo/metrics.csv (no space left on device): metrics rows" in log
        panel = app.query_one(StatusPanel)
        lines = [panel.render_line(y).text for y in range(panel.size.height)]
        assert "training  no space left on device" in lines[0]
        assert "saved  step 14, 3m05s ago · failing 1m00s" in next(line for line in lines if "saved" in line)
        await quit_app(pilot, app)
        await wait_until(pilot, lambda: app.return_code is not None, what="exit")
    assert app.return_code == 1
