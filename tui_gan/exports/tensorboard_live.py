"""``--tensorboard``: the run's scalars and epoch-end grids as a TensorBoard event file while
it trains, written on a thread of its own.

The training service (service/training.py) hands every event to ``TensorBoardWriter.observe`` in
the training thread, which only queues the few it keeps: history rows (``Progress.row``,
one every 2 s), quality measurements (``Quality``) and epoch ends (``EpochEnd``). The
writer's thread imports TensorBoard (the tensorboard extra) and turns them into events
(tensorboard.py, tbevents.py): the grid is the PNG the engine has just saved, read back as
it is, so nothing is encoded twice. TensorBoard's RecordWriter computes its CRCs in
Python, about 0.15 s for an 800 kB grid of 64 images on a 2-core test machine: more work
the training thread must not wait for. Each record is appended whole (core/writes.py's
AppendFile): a record a full disk does not take waits in memory, with the ones after it
(QUEUE_LIMIT at most), and is written when the disk takes writes again; the failure is part
of the run's outage (core/outage.py), which the run's viewers are told of. Any other failure
of the writer (the extra not installed) is one warning line; the run goes on without
TensorBoard.

Each start of the service writes a file of its own (``RunDir.tensorboard``) that takes
over from a step (see tensorboard.py on how files combine) and first writes the history
from that step up to the checkpoint it starts from: from the last epoch's end (its rows,
quality and grid: every tag has a point there, so both of TensorBoard's loaders drop
whatever an earlier, killed service logged past the checkpoint), or from step 0 when the
folder holds no event file yet (switched on at a resume, the whole run shows).
"""

from __future__ import annotations

import collections
import io
import itertools
import math
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import events as ev
from ..core.contract import Event
from ..core.errors import UserError
from ..core.history import HistoryRow
from ..core.outage import TENSORBOARD, WriteWatch
from ..core.rundir import RunDir
from ..core.writes import AppendFile
from . import event_file_module
from .tensorboard import (
    SAMPLES_TAG,
    Written,
    epoch_steps,
    event_file_name,
    event_files,
    grid_event,
    history_events,
    scalars_of,
)

if TYPE_CHECKING:
    from tensorboard.compat.proto.event_pb2 import Event

    from .tbevents import EventFile

#: Items the queue holds before new ones are dropped (a row every 2 s: hours of a stuck disk).
QUEUE_LIMIT = 10_000
#: Seconds the end of a run waits for the writer to write what is queued.
CLOSE_TIMEOUT = 10.0

_STARTS = itertools.count()


class TensorBoardWriter:
    """Feeds one service's events to an event file of its own, off the training thread.
    Idle (and free) unless the run's config has ``tensorboard`` on."""

    def __init__(self, note: Callable[[str], None], writes: WriteWatch | None = None) -> None:
        self.note = note
        """Prints a line to the run's log (the headless Printer's ``line``)."""
        self.writes = writes if writes is not None else WriteWatch()
        """The run's (core/outage.py): a failed write is part of the run's outage, not the end of TensorBoard."""
        self.path: Path | None = None
        """The event file, once the writer's thread has made it."""
        self._queue: queue.Queue[Any] = queue.Queue(QUEUE_LIMIT)
        self._thread: threading.Thread | None = None
        self._failed = False
        self._dropped = 0
        # the writer's thread's own:
        self._pending: collections.deque[Event] = collections.deque()  # records not written yet
        self._behind = ""  # why a write failed, since the last that worked
        self._events: EventFile | None = None
        self._folder = Path()
        self._started_at = 0.0

    # ----------------------------------------------------------------- the training thread

    def observe(self, event: Event) -> None:
        """Queue what TensorBoard shows of ``event`` (nothing when the writer is off)."""
        if self._thread is None:
            if isinstance(event, ev.Started) and event.config.get("tensorboard") and not self._failed:
                thread = threading.Thread(target=self._write, args=(event,), name="tensorboard", daemon=True)
                try:
                    thread.start()
                except RuntimeError as exc:  # no thread to be had: the run goes on without TensorBoard
                    self._fail(exc)
                    return
                self._thread = thread
            return
        if isinstance(event, ev.Progress):
            if event.row is not None:
                self._put(("row", event.row, time.time()))
        elif isinstance(event, ev.Quality):
            nan = math.nan
            self._put(("row", HistoryRow.quality(event.step, event.epoch, nan, nan, nan, event.swd, event.diversity),
                       time.time()))
        elif isinstance(event, ev.EpochEnd):
            self._put(("grid", event, time.time()))

    def _put(self, item: Any) -> None:
        if self._failed:
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:  # the disk does not keep up: never make training wait for it
            self._dropped += 1

    def close(self) -> None:
        """Write what is queued and close the file (waits at most CLOSE_TIMEOUT seconds)."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=CLOSE_TIMEOUT)
        except queue.Full:
            pass
        self._thread.join(CLOSE_TIMEOUT)
        if self._thread.is_alive():
            self.note(f"warning: TensorBoard: {self.path} may lack the run's last events (its disk did not answer "
                      f"within {CLOSE_TIMEOUT:.0f} s)")
        elif self._dropped:
            self.note(f"warning: TensorBoard: {self._dropped} event(s) were left out of {self.path} "
                      "(the disk did not keep up)")

    # ----------------------------------------------------------------- the writer's thread

    def _write(self, started: ev.Started) -> None:
        try:
            self._history(started)
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the run goes on without TensorBoard
            self._fail(exc)
        while True:
            item = self._queue.get()
            if item is None:
                break
            if self._failed:
                continue
            try:
                self._keep(self._encode(item))
            except Exception as exc:  # noqa: BLE001 - as above
                self._fail(exc)
                continue
            self._flush()
        if not self._failed:
            self._flush()
        if self._pending:
            self.note(f"warning: TensorBoard: {len(self._pending)} record(s) could not be written to "
                      f"{self.path or self._folder} ({self._behind}) before the run ended")
        if self._events is not None:
            self._events.close()

    def _history(self, started: ev.Started) -> None:
        """What the file begins with: its start, then the history from the step it takes
        over from (module docstring). Its name is chosen when the file is made (``_create``)."""
        tb = event_file_module("--tensorboard")
        run = RunDir(started.run_dir)
        self._folder = folder = run.tensorboard
        start, first_grid = takeover(started, backfill=not event_files(folder))
        self._started_at = now = time.time()
        written = Written()
        rows = [row for row in started.history if row.step >= start]
        grids = [(epoch, path) for epoch, path in run.epoch_grids() if first_grid <= epoch <= started.epoch]
        self._pending.extend([*tb.file_start(now, start), *history_events(rows, grids, now, written)])
        for line in written.notes:
            self.note(f"TensorBoard: {line}")

    def _create(self) -> None:
        """Make the event file (the pid and a count in its name, as TensorFlow names them: a
        service started again in the same second, in one process in tests, gets its own)."""
        tb = event_file_module("--tensorboard")
        self._folder.mkdir(parents=True, exist_ok=True)
        path = self._folder / event_file_name(self._started_at, f".{os.getpid()}.{next(_STARTS)}.tui-gan")
        self._events = tb.EventFile(AppendFile(path, exclusive=True))
        self.path = path
        self.note(f"TensorBoard: writing {path} (view it with: tensorboard --logdir {self._folder})")

    def _keep(self, events: list[Event]) -> None:
        """Queue records for the file; while writes fail, the newest QUEUE_LIMIT of them."""
        self._pending.extend(events)
        while self._behind and len(self._pending) > QUEUE_LIMIT:
            self._pending.popleft()
            self._dropped += 1

    def _flush(self) -> None:
        """Write the queued records, each whole, through the run's WriteWatch: a record the
        disk does not take waits for the next try (a full disk that frees up loses nothing)."""
        if self._events is None:
            failure = self.writes.try_write(TENSORBOARD, self._folder, self._create, "TensorBoard records",
                                            kept=True)
            if failure is not None:
                self._behind = failure
                return
        events = self._events
        assert events is not None
        while self._pending:
            record = self._pending[0]
            failure = self.writes.try_write(TENSORBOARD, self.path or self._folder, lambda: events.add(record),
                                            "TensorBoard records", late=int(bool(self._behind)), kept=True)
            if failure is not None:
                self._behind = failure
                return
            self._pending.popleft()
        self._behind = ""

    def _encode(self, item: tuple[Any, ...]) -> list[Event]:
        from .tbevents import image_event, scalars_event  # (imported by _history)

        kind, payload, wall = item
        if kind == "row":
            values = scalars_of(payload)
            return [scalars_event(wall, payload.step, values)] if values else []
        end: ev.EpochEnd = payload
        try:
            if not end.sample_path:
                raise ValueError("its grid could not be written")
            return [grid_event(Path(end.sample_path), end.step, wall)]
        except (OSError, ValueError):  # the saved grid is gone: encode the event's images instead
            if end.images is None:
                return []
            return [image_event(wall, end.step, SAMPLES_TAG, grid_png(end.images))]

    def _fail(self, exc: BaseException) -> None:
        """Something other than a failed write (the extra missing, a bug): no TensorBoard from here on."""
        if not self._failed:
            self._failed = True
            if isinstance(exc, UserError):  # says itself what is wrong and what to do
                self.note(f"warning: TensorBoard: {exc}; the run goes on without it")
                return
            what = getattr(exc, "strerror", None) or f"{type(exc).__name__}: {exc}"
            where = self.path or "its event file"
            self.note(f"warning: TensorBoard: cannot write {where} ({what}); the run goes on without it")


def takeover(started: ev.Started, backfill: bool) -> tuple[int, int]:
    """(the step a service's file takes over from, the first epoch whose grid it writes
    again): 0 and 1 with ``backfill``; else the end of the last epoch the checkpoint
    completed and that epoch (0 and 1 within the first, or when the history cannot say)."""
    end = None if backfill or started.epoch < 1 else epoch_steps(started.history, [started.epoch]).get(started.epoch)
    return (0, 1) if end is None else (min(end, started.step), started.epoch)


def grid_png(images: Any) -> bytes:
    """uint8 (N, C, H, W) images as the PNG grid the engine saves."""
    from ..pictures.grids import grid, to_pil

    out = io.BytesIO()
    to_pil(grid(images)).save(out, format="PNG")
    return out.getvalue()
