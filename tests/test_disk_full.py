"""A run directory that stops taking writes (issue 28): the training goes on, one warning
per outage, saves tried again, rows kept and written later, no file damaged or left half
written, and a stop on a full disk that says which checkpoint is the newest. Here with a
disk that fails on demand; test_full_filesystem.py does it on a real full filesystem."""

from __future__ import annotations

import errno
import io
import os
import shutil
import types
from pathlib import Path

import pytest

from tui_gan.core import atomic
from tui_gan.core import events as ev
from tui_gan.core.metrics_csv import read_metrics
from tui_gan.core.outage import CHECKPOINTS, GRIDS, METRICS, WriteWatch
from tui_gan.core.report import Report
from tui_gan.core.runview import RunView
from tui_gan.core.writes import AppendFile, write_failure
from tui_gan.engine.checkpoint import load_checkpoint

from .conftest import EXPLICIT, tiny_config

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class FullDisk:
    """Writes to files under ``root`` fail while ``full`` is set, with ``error`` (ENOSPC by
    default), as a disk does that fills in the middle of a write: the file takes part of the
    data first. Covers every way the run writes: core/atomic.py's files (checkpoints, grids,
    the start of metrics.csv) and os.write (AppendFile: rows, records, log lines)."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = str(root)
        self.full = False
        self.error = errno.ENOSPC
        self.failures = 0
        real_write, real_open = os.write, open

        def write(fd: int, data: bytes) -> int:
            if self.full and self.ours(fd):
                self.failures += 1
                raise OSError(self.error, os.strerror(self.error))
            return real_write(fd, data)

        def open_(path, mode="r", *args, **kwargs):  # noqa: ANN001 - open's own signature
            f = real_open(path, mode, *args, **kwargs)
            return Filling(self, f) if "w" in mode and str(path).startswith(self.root) else f

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(atomic, "open", open_, raising=False)

    def ours(self, fd: int) -> bool:
        try:
            return os.readlink(f"/proc/self/fd/{fd}").startswith(self.root)
        except OSError:
            return False


class Filling(io.RawIOBase):
    """A file on a FullDisk: while it is full, a write takes half its data, then fails."""

    def __init__(self, disk: FullDisk, f) -> None:  # noqa: ANN001 - a binary file
        super().__init__()
        self.disk, self.f = disk, f

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # noqa: ANN001 - bytes-like
        if self.disk.full:
            self.f.write(bytes(memoryview(data)[: len(data) // 2]))
            self.f.flush()
            self.disk.failures += 1
            raise OSError(self.disk.error, os.strerror(self.disk.error))
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()

    def fileno(self) -> int:
        return self.f.fileno()

    def close(self) -> None:
        super().close()  # (flushes first)
        self.f.close()


def leftovers(root: Path) -> list[Path]:
    """Temporary files (core/atomic.py's) left in a run directory."""
    return [p for p in root.rglob("*") if ".tmp-" in p.name or p.name.endswith(".partial")]


def engine_with(tmp_path: Path, before_step, **config):  # noqa: ANN001
    from tui_gan.engine.engine import Engine

    return Engine(tiny_config(**config), tmp_path / "run", explicit=EXPLICIT, before_step=before_step)


# ----------------------------------------------------------------------------- recognising a failed write


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "no space left on device"),
                                         (errno.EDQUOT, "disk quota exceeded"),
                                         (errno.EROFS, "read-only file system"),
                                         (errno.EACCES, "permission denied"),
                                         (errno.EIO, "input/output error")])
def test_an_os_error_is_a_failed_write_with_its_reason_in_words(tmp_path, code, words):
    assert write_failure(OSError(code, "whatever"), tmp_path / "x") == words


def test_torchs_zip_writer_error_says_what_the_disk_said(tmp_path, monkeypatch):
    text = "[enforce fail at inline_container.cc:672] . unexpected pos 10624 vs 10518"
    after_a_failed_flush = RuntimeError(text)  # as torch.save raises it when the file's flush failed
    after_a_failed_flush.__context__ = OSError(errno.ENOSPC, "No space left on device")
    assert write_failure(after_a_failed_flush, tmp_path / "last.pt") == "no space left on device"
    alone = RuntimeError(text)
    assert write_failure(alone, tmp_path / "last.pt") == text  # room enough: its own words
    monkeypatch.setattr(shutil, "disk_usage", lambda path: types.SimpleNamespace(free=4096))
    assert write_failure(alone, tmp_path / "last.pt") == "no space left on device"


def test_other_exceptions_are_not_failed_writes(tmp_path):
    assert write_failure(ValueError("bad"), tmp_path) is None
    assert write_failure(RuntimeError("CUDA error: an illegal memory access"), tmp_path) is None
    assert write_failure(KeyboardInterrupt(), tmp_path) is None


def test_an_append_the_disk_takes_part_of_is_cut_off_again(tmp_path, monkeypatch):
    path = tmp_path / "rows.csv"
    f = AppendFile(path)
    f.write(b"a,b\r\n1,2\r\n")
    real = os.write
    calls = []

    def half_then_full(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real(fd, bytes(memoryview(data)[:3]))  # the disk takes 3 bytes
        raise ENOSPC

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError):
        f.write(b"3,4\r\n5,6\r\n")
    monkeypatch.setattr(os, "write", real)
    assert path.read_bytes() == b"a,b\r\n1,2\r\n"  # no half row
    f.write(b"3,4\r\n5,6\r\n")
    assert path.read_bytes() == b"a,b\r\n1,2\r\n3,4\r\n5,6\r\n"
    f.close()


# ----------------------------------------------------------------------------- the outage


def test_one_warning_per_outage_and_one_line_when_every_kind_works_again(tmp_path):
    clock = iter(range(100, 200))
    watch = WriteWatch(clock=lambda: float(next(clock)))

    def fail() -> None:
        raise ENOSPC

    assert watch.try_write(METRICS, tmp_path / "metrics.csv", fail, "metrics rows from step 3", kept=True) \
        == "no space left on device"
    watch.try_write(CHECKPOINTS, tmp_path / "last.pt", fail, "last.pt of step 14")
    watch.try_write(METRICS, tmp_path / "metrics.csv", fail, "metrics rows from step 3", kept=True)
    watch.try_write(GRIDS, tmp_path / "epoch-0001.png", fail, "samples/epoch-0001.png")
    first = watch.take()
    assert len(first) == 1 and isinstance(first[0], ev.WritesFailing)
    assert (first[0].path, first[0].reason, first[0].what) == (str(tmp_path / "metrics.csv"),
                                                                "no space left on device", "metrics rows from step 3")
    assert watch.failing == first[0]
    assert watch.try_write(METRICS, tmp_path / "metrics.csv", lambda: None, "metrics rows", late=5) is None
    watch.try_write(GRIDS, tmp_path / "epoch-0002.png", lambda: None, "samples/epoch-0002.png")
    assert watch.take() == [] and watch.failing is not None  # checkpoints still fail: the outage goes on
    assert watch.try_write(CHECKPOINTS, tmp_path / "last.pt", lambda: None, "last.pt of step 28") is None
    watch.checkpoint(28, tmp_path / "last.pt")
    recovered, newest = watch.take()
    assert isinstance(recovered, ev.WritesRecovered) and watch.failing is None
    assert recovered.what == "last.pt of step 28" and recovered.late == ["5 metrics rows"]
    assert recovered.lost == ["last.pt of step 14", "samples/epoch-0001.png"]
    assert newest == ev.NewestCheckpoint(28, str(tmp_path / "last.pt"), newest.wall_time) == watch.newest
    line = Report().lines(recovered)[0].text
    assert line.startswith("writing again: last.pt of step 28 saved to") and "written late: 5 metrics rows" in line
    warning = Report().lines(first[0])[0]
    assert warning.text.startswith(f"warning: cannot write {tmp_path / 'metrics.csv'} (no space left on device): ")
    # a new failure is a new outage, with its own warning
    watch.try_write(GRIDS, tmp_path / "epoch-0003.png", fail, "samples/epoch-0003.png")
    assert [type(e) for e in watch.take()] == [ev.WritesFailing]


def test_a_bug_in_a_write_is_not_an_outage(tmp_path):
    watch = WriteWatch()

    def bug() -> None:
        raise TypeError("not a failed write")

    with pytest.raises(TypeError):
        watch.try_write(CHECKPOINTS, tmp_path / "last.pt", bug, "last.pt")
    assert watch.take() == [] and watch.failing is None


def test_the_run_view_keeps_the_outage_and_the_last_checkpoint_and_attached_carries_them():
    view = RunView(log_lines=10)
    failing = ev.WritesFailing("/r/metrics.csv", "no space left on device", "metrics rows", 1000.0)
    view.apply_all([ev.NewestCheckpoint(14, "/r/checkpoints/last.pt", 900.0), failing])
    assert view.writes_failing == failing and view.last_checkpoint.step == 14
    assert Report.checkpoint_age(view.last_checkpoint, 900.0 + 185) == "step 14, 3m05s ago"
    late = RunView()
    late.apply(view.attached(2))
    assert late.writes_failing == failing and late.last_checkpoint == view.last_checkpoint
    view.apply(ev.WritesRecovered("/r/checkpoints/last.pt", "last.pt of step 28", 60.0))
    assert view.writes_failing is None
    assert [tone for _, tone in view.log] == ["warning", "good"]  # the checkpoint itself has no line


# ----------------------------------------------------------------------------- the engine on a full disk


def test_the_run_goes_on_through_a_full_disk_and_catches_up_when_it_frees(tmp_path, monkeypatch):
    """Full from step 16 to step 32: the epoch's end at 28 saves nothing, the run trains on,
    one warning; at 42 last.pt is saved again, and metrics.csv has every row, those of the
    full period included."""
    disk = FullDisk(tmp_path / "run", monkeypatch)
    seen_during: list[tuple[list[Path], int]] = []

    def before_step(step: int) -> None:
        disk.full = 16 <= step < 32
        if step == 30:  # the one before the outage, intact; nothing half written
            seen_during.append((leftovers(tmp_path / "run"), load_checkpoint(tmp_path / "run")["step"]))

    engine = engine_with(tmp_path, before_step, epochs=4, quality_images=64)
    events = list(engine.run())
    assert disk.failures > 3
    assert not [e for e in events if isinstance(e, ev.Error)]
    finished = events[-1]
    assert isinstance(finished, ev.Finished) and finished.reason == "completed" and finished.step == 56
    assert not finished.save_failed and finished.checkpoint_step == 56
    failing = [e for e in events if isinstance(e, ev.WritesFailing)]
    recovered = [e for e in events if isinstance(e, ev.WritesRecovered)]
    assert len(failing) == 1 and len(recovered) == 1 and events.index(failing[0]) < events.index(recovered[0])
    assert failing[0].reason == "no space left on device"
    assert "last.pt of step 28" in recovered[0].lost and "samples/epoch-0002.png" in recovered[0].lost
    assert any(late.endswith("metrics rows") for late in recovered[0].late)
    ends = {e.epoch: e for e in events if isinstance(e, ev.EpochEnd)}
    assert ends[2].checkpoint_path == ends[2].sample_path == "" and ends[3].checkpoint_path.endswith("last.pt")
    assert seen_during == [([], 14)] and leftovers(tmp_path / "run") == []
    # every row of the history is in metrics.csv, in order, the full period's included
    history = load_checkpoint(tmp_path / "run")["history"]
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert [r.step for r in rows] == [int(s) for s in history["values"][:, 0].tolist()]
    assert any(16 <= r.step < 32 for r in rows)
    newest = [e.step for e in events if isinstance(e, ev.NewestCheckpoint)]
    assert 14 in newest and 28 not in newest and newest[-1] == 56


def test_stopping_on_a_full_disk_names_the_newest_complete_checkpoint(tmp_path, monkeypatch):
    disk = FullDisk(tmp_path / "run", monkeypatch)
    engine = None

    def before_step(step: int) -> None:
        disk.full = step >= 16
        if step == 20:
            engine.control.stop("terminated (SIGTERM)")

    engine = engine_with(tmp_path, before_step, epochs=10)
    events = list(engine.run())
    finished = events[-1]
    last = str(tmp_path / "run" / "checkpoints" / "last.pt")
    assert isinstance(finished, ev.Finished) and finished.step == 21  # (the step under way when it was asked)
    assert finished.save_failed == "no space left on device"
    assert (finished.checkpoint_path, finished.checkpoint_step) == (last, 14)
    assert load_checkpoint(last)["step"] == 14 and leftovers(tmp_path / "run") == []
    line = Report().lines(finished)[0]
    assert line.text == (f"stopped (terminated (SIGTERM)) at step 21, but the final checkpoint could not be written "
                         f"(no space left on device): the newest complete checkpoint is {last} (step 14); "
                         f"continue from it with: tui-gan --resume {last}")
    view = RunView()
    view.apply_all(events)
    outcome = view.outcome()
    assert (outcome.state, outcome.save_failed, outcome.checkpoint, outcome.checkpoint_step) == (
        "stopped", "no space left on device", last, 14)


def test_a_snapshot_asked_for_during_an_outage_is_answered(tmp_path, monkeypatch, engine_thread):
    disk = FullDisk(tmp_path / "run", monkeypatch)
    disk.error = errno.EROFS
    read_only = [True]
    engine = engine_with(tmp_path, lambda step: setattr(disk, "full", step >= 3 and read_only[0]), epochs=50)
    t = engine_thread(engine)
    failing = t.wait_for(ev.WritesFailing)
    assert failing.reason == "read-only file system"
    engine.control.snapshot()
    warning = t.wait_for(ev.EngineWarning, predicate=lambda e: e.message.startswith("snapshot"))
    assert warning.message.endswith("not saved: read-only file system")
    read_only[0] = False
    engine.control.snapshot()
    saved = t.wait_for(ev.SnapshotSaved)
    assert Path(saved.checkpoint_path).is_file()


def test_metrics_csv_on_a_device_writes_to_it_and_never_replaces_it(tmp_path):
    """os.devnull as metrics.csv (tests give it) is written to, not renamed over: an atomic
    rewrite there would put a regular file in place of /dev/null."""
    import stat

    from tui_gan.core.atomic import atomic_write_text
    from tui_gan.core.history import HistoryRow
    from tui_gan.engine.metrics import MetricsCsv

    csv = MetricsCsv(os.devnull, [HistoryRow.quality(0, 0, 1.0, 1.0, 0.0, 1.0, 1.0)])
    csv.append(HistoryRow.quality(1, 0, 1.0, 1.0, 0.0, 1.0, 1.0))
    csv.close()
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    with pytest.raises(OSError, match="not a regular file"):
        atomic_write_text(os.devnull, "x")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
