"""One run's writes to its directory, watched: ``WriteWatch.try_write`` makes each write, and
a write that fails for want of space, a quota or a filesystem that no longer takes writes
(core/writes.py's ``write_failure``) is recorded instead of ending the run.

An outage starts with the first failed write (one WritesFailing: the warning every viewer
and the log show) and ends when every kind of write that failed in it has worked again
(one WritesRecovered: what was written late, what was lost). Kinds are tried again on their
own clocks: metrics rows every couple of seconds, checkpoints and grids at their next save.
The newest checkpoint written is kept (NewestCheckpoint): the age the status panel shows,
and the checkpoint named when the final save fails.

Thread-safe: the engine's thread writes checkpoints, grids and rows, a save may run on a
thread of its own, and the service's TensorBoard writer has its own; the engine yields the
events (``take``) at its next report.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import events as ev
from .writes import write_failure

CHECKPOINTS = "checkpoints"
GRIDS = "sample grids"
METRICS = "metrics rows"
TENSORBOARD = "TensorBoard records"
"""The kinds of write (each kind is tried again on its own clock)."""
MAX_LOST = 6
"""What an outage's end lists as lost, at most (then 'and N more')."""


class _Outage:
    def __init__(self, first: ev.WritesFailing, kind: str) -> None:
        self.first = first
        self.started = time.monotonic()
        self.failing = {kind}
        self.late: collections.Counter[str] = collections.Counter()
        self.lost: list[str] = []  # the first MAX_LOST of them (a long outage loses a file an epoch)
        self.more_lost = 0


class WriteWatch:
    """The run directory's writes (module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._news: list[ev.NewestCheckpoint | ev.WritesFailing | ev.WritesRecovered] = []
        self._outage: _Outage | None = None
        self.newest: ev.NewestCheckpoint | None = None
        """The newest complete checkpoint written (or resumed from)."""

    @property
    def failing(self) -> ev.WritesFailing | None:
        """The outage in progress: its first failure."""
        outage = self._outage
        return outage.first if outage is not None else None

    def try_write(self, kind: str, path: str | Path, write: Callable[[], object], what: str, *, late: int = 0,
                  kept: bool = False) -> str | None:
        """Call ``write()``, which writes ``path``: None when it did, else why not. A failed
        write (core/writes.py) is recorded; anything else goes on up. ``what`` names what
        it writes, for the messages ('last.pt of step 32'); ``late``: how many kept items
        this write catches up on; ``kept``: what failed is kept for a later write (else it
        is lost)."""
        try:
            write()
        except BaseException as exc:
            reason = write_failure(exc, path)
            if reason is None:
                raise
            self.failed(kind, path, reason, what, kept=kept)
            return reason
        self.wrote(kind, path, what, late=late)
        return None

    def failed(self, kind: str, path: str | Path, reason: str, what: str, *, kept: bool = False) -> None:
        """A write of ``kind`` failed: the start of an outage, or part of the one under way."""
        with self._lock:
            outage = self._outage
            if outage is None:
                first = ev.WritesFailing(str(path), reason, what, self.clock())
                self._outage = outage = _Outage(first, kind)
                self._news.append(first)
            outage.failing.add(kind)
            if not kept and len(outage.lost) < MAX_LOST:
                outage.lost.append(what)
            elif not kept:
                outage.more_lost += 1

    def wrote(self, kind: str, path: str | Path, what: str, *, late: int = 0) -> None:
        """A write of ``kind`` worked: the end of the outage once every kind that failed has."""
        with self._lock:
            outage = self._outage
            if outage is None:
                return
            if late:
                outage.late[kind] += late
            outage.failing.discard(kind)
            if outage.failing:
                return
            self._outage = None
            lost = outage.lost + ([f"and {outage.more_lost} more"] if outage.more_lost else [])
            self._news.append(ev.WritesRecovered(str(path), what, time.monotonic() - outage.started,
                                                 [f"{n} {k}" for k, n in outage.late.items()], lost))

    def checkpoint(self, step: int, path: str | Path, wall_time: float | None = None) -> None:
        """A complete checkpoint of ``step`` is at ``path`` (written now, or at ``wall_time``)."""
        newest = ev.NewestCheckpoint(step, str(path), self.clock() if wall_time is None else wall_time)
        with self._lock:
            self.newest = newest
            self._news.append(newest)

    def take(self) -> list[ev.NewestCheckpoint | ev.WritesFailing | ev.WritesRecovered]:
        """The events since the last call, in order."""
        with self._lock:
            news, self._news = self._news, []
        return news
