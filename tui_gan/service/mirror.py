"""The run as a newly attached viewer must see it, kept up to date from the event stream.

The service's hub hands every event to ``RunMirror.observe`` (in its own thread, never the
engine's) and asks it for an ``Attached`` event when a viewer connects: the Started of the
run with the history so far, the epoch-end samples, the current learning rates, the recent
event-log lines, and the latest progress, samples, pause and pending learning rates. It
keeps what a viewer draws, applied the way the viewer applies it (a Quality event becomes a
quality row of the history, as the training screen adds it to its chart).
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any

from ..core import events as ev
from ..core.history import HistoryRow
from ..core.report import Report, Tone

LOG_LINES = 200
"""Event-log lines a new viewer gets: more than a terminal shows, a short read."""


class RunMirror:
    def __init__(self) -> None:
        self.report = Report()
        self.log: collections.deque[tuple[str, str]] = collections.deque(maxlen=LOG_LINES)
        self.started: ev.Started | None = None
        self.loading: ev.Loading | None = None
        self.progress: ev.Progress | None = None
        self.samples: ev.Samples | None = None
        self.quality: ev.Quality | None = None
        self.paused: str | None = None
        self.lr_pending: ev.LrPending | None = None
        self.auto_pause = False
        self.finished: ev.Finished | ev.Error | None = None
        self.device_status: ev.DeviceStatus | None = None

    def observe(self, event: Any) -> None:
        handler = self._HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)
        if isinstance(event, (ev.Progress, ev.Loading)):
            self.report.observe(event)
            return
        for line in self.report.lines(event):
            if line.tone is not Tone.STATUS:
                self.log.append((line.text, line.tone.value))

    def attached(self, viewers: int) -> ev.Attached:
        """The snapshot for a viewer that connects now (``viewers`` counts it). It shares the
        mirror's lists: the hub's thread encodes it at once, before any event changes them."""
        started = self.started
        return ev.Attached(started, list(self.log), self.loading if started is None else None, self.progress,
                           self.samples, self.paused, self.lr_pending, self.auto_pause, viewers,
                           self.device_status)

    # ----------------------------------------------------------------- one per event kind

    def _started(self, e: ev.Started) -> None:
        self.started = dataclasses.replace(e, history=list(e.history), progression=list(e.progression))
        self.loading = None

    def _loading(self, e: ev.Loading) -> None:
        self.loading = e

    def _progress(self, e: ev.Progress) -> None:
        if self.started is not None and e.row is not None:
            self.started.history.append(e.row)
        self.progress = dataclasses.replace(e, row=None)  # its row is in the history now

    def _samples(self, e: ev.Samples) -> None:
        self.samples = e

    def _epoch_end(self, e: ev.EpochEnd) -> None:
        if self.started is not None and e.images is not None:
            self.started.progression.append((e.epoch, e.images))

    def _quality(self, e: ev.Quality) -> None:
        if self.started is not None:
            nan = math.nan
            self.started.history.append(HistoryRow.quality(e.step, e.epoch, nan, nan, nan, e.swd, e.diversity))
        self.quality = e

    def _lr_pending(self, e: ev.LrPending) -> None:
        self.lr_pending = e

    def _lr_applied(self, e: ev.LrApplied) -> None:
        self.lr_pending = None
        if self.started is not None:
            self.started.lr_g, self.started.lr_d = e.lr_g, e.lr_d

    def _paused(self, e: ev.Paused) -> None:
        self.paused = e.reason

    def _resumed(self, e: ev.Resumed) -> None:
        self.paused = None

    def _auto_pause(self, e: ev.AutoPauseSet) -> None:
        self.auto_pause = e.on

    def _finished(self, e: ev.Finished | ev.Error) -> None:
        self.finished = e

    def _device_status(self, e: ev.DeviceStatus) -> None:
        self.device_status = e

    _HANDLERS = {
        ev.Started: _started,
        ev.Loading: _loading,
        ev.Progress: _progress,
        ev.Samples: _samples,
        ev.EpochEnd: _epoch_end,
        ev.Quality: _quality,
        ev.LrPending: _lr_pending,
        ev.LrApplied: _lr_applied,
        ev.Paused: _paused,
        ev.Resumed: _resumed,
        ev.AutoPauseSet: _auto_pause,
        ev.Finished: _finished,
        ev.Error: _finished,
        ev.DeviceStatus: _device_status,
    }
