"""The run's state, folded once from its events: ``RunView.apply(event)``.

Every part of tui-gan that needs to know where a run is reads a RunView rather than
folding events itself: the service's snapshot for a viewer that attaches mid-run
(``attached()``, and ``apply(Attached)`` on the viewer's side restores it), the record a
service leaves when its run ends (``outcome()``), ``tui-gan ls``'s status of a live run,
the remote control's pause state, and the app's panels.

Not thread-safe: one thread applies the events (the service's hub thread, the app's
message loop), and the others read it there.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from . import events as ev
from .contract import Event
from .history import HistoryRow
from .report import Report, Tone

FINISHED_REASONS = ("completed", "max_steps")
"""Finished reasons that mean the run is done (any other reason: it was stopped)."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a run ended, for the service's record."""

    state: str
    """'finished', 'stopped' or 'failed'."""
    reason: str
    message: str
    step: int
    epoch: int
    images_per_sec: float | None
    save_failed: str = ""
    """Why the final checkpoint could not be written ('' when it was, or the run failed)."""
    checkpoint: str | None = None
    """The newest complete checkpoint (the final one when it was written)."""
    checkpoint_step: int | None = None


class RunView:
    """The run's state (module docstring). ``log_lines``: keep that many recent event-log
    lines (the service's view does, for viewers that attach later)."""

    def __init__(self, log_lines: int = 0) -> None:
        self.report = Report() if log_lines else None
        self.log: collections.deque[tuple[str, str]] = collections.deque(maxlen=log_lines or None)
        self.loading: ev.Loading | None = None
        self.started: ev.Started | None = None
        """The run as a resumed run's Started would describe it now: its ``history`` and
        ``progression`` grow, its learning rates are the current ones."""
        self.step = self.epoch = 0
        self.progress: ev.Progress | None = None
        """The newest progress (its row, if it had one, is in the history)."""
        self.samples: ev.Samples | None = None
        self.quality: ev.Quality | None = None
        self.best_swd: float | None = None
        self.lr_pending: ev.LrPending | None = None
        self.paused: str | None = None
        """The pause's reason while the run is paused."""
        self.pause_changes = 0
        """How often the run paused or resumed: a viewer's own pause request is news until this moves."""
        self.auto_pause = False
        self.viewers = 1
        self.device_status: ev.DeviceStatus | None = None
        self.last_checkpoint: ev.NewestCheckpoint | None = None
        """The newest complete checkpoint: its step and when it was written."""
        self.writes_failing: ev.WritesFailing | None = None
        """The outage in progress (its first failed write), while the run directory takes no writes."""
        self.ended: ev.Finished | ev.Error | None = None
        self.disconnected: ev.Disconnected | None = None

    # ----------------------------------------------------------------- derived

    @property
    def history(self) -> list[HistoryRow]:
        return self.started.history if self.started is not None else []

    @property
    def progression(self) -> list[tuple[int, Any]]:
        """The epoch-end samples so far: (epoch, uint8 (N, C, H, W))."""
        return self.started.progression if self.started is not None else []

    @property
    def lrs(self) -> tuple[float, float] | None:
        return (self.started.lr_g, self.started.lr_d) if self.started is not None else None

    @property
    def class_names(self) -> list[str]:
        """A conditional run's classes in order (label i is the i-th); empty for the tutorial's GAN."""
        config = self.started.config if self.started is not None else {}
        return list(config.get("class_names") or []) if config.get("conditional") else []

    def class_name(self, label: int) -> str:
        """Class ``label``'s name, or the label itself where the run names no such class."""
        names = self.class_names
        return names[label] if 0 <= label < len(names) else str(label)

    @property
    def is_over(self) -> bool:
        return self.ended is not None

    def outcome(self) -> Outcome:
        """How the run ended (a run whose stream ended without Finished or Error was stopped)."""
        ended, state, reason, message, speed = self.ended, "stopped", "", "", None
        newest = self.last_checkpoint
        checkpoint, at = (newest.path, newest.step) if newest is not None else (None, None)
        save_failed = ""
        if isinstance(ended, ev.Finished):
            state = "finished" if ended.reason in FINISHED_REASONS else "stopped"
            reason, speed, save_failed = ended.reason, ended.images_per_sec, ended.save_failed
            if ended.checkpoint_path is not None:
                checkpoint, at = ended.checkpoint_path, ended.checkpoint_step
        elif isinstance(ended, ev.Error):
            state, message = "failed", ended.message
        return Outcome(state, reason, message, self.step, self.epoch, speed, save_failed, checkpoint, at)

    def attached(self, viewers: int) -> ev.Attached:
        """What a viewer that connects now needs (``viewers`` counts it). It shares this
        view's lists: encode it before the next event is applied."""
        started = self.started
        return ev.Attached(started, list(self.log), self.loading if started is None else None, self.progress,
                           self.samples, self.paused, self.lr_pending, self.auto_pause, viewers,
                           self.device_status, self.last_checkpoint, self.writes_failing)

    # ----------------------------------------------------------------- folding

    def apply(self, event: Event) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)
        if self.report is not None:
            self._log(event)

    def apply_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.apply(event)

    def _log(self, event: Event) -> None:
        assert self.report is not None
        if isinstance(event, (ev.Progress, ev.Loading)):  # status lines: no log line
            self.report.observe(event)
            return
        for line in self.report.lines(event):
            if line.tone is not Tone.STATUS:
                self.log.append((line.text, line.tone.value))

    def _loading(self, e: ev.Loading) -> None:
        self.loading = e

    def _started(self, e: ev.Started) -> None:
        self.started = dataclasses.replace(e, history=list(e.history), progression=list(e.progression))
        self.loading = None
        self.step, self.epoch = e.step, e.epoch

    def _progress(self, e: ev.Progress) -> None:
        if e.row is not None and self.started is not None:
            self.started.history.append(e.row)
        self.progress = dataclasses.replace(e, row=None) if e.row is not None else e
        self.step, self.epoch = e.step, e.epoch

    def _samples(self, e: ev.Samples) -> None:
        self.samples = e

    def _epoch_end(self, e: ev.EpochEnd) -> None:
        self.step, self.epoch = e.step, e.epoch
        if e.images is not None and self.started is not None:
            self.started.progression.append((e.epoch, e.images))

    def _quality(self, e: ev.Quality) -> None:
        if self.started is not None:
            self.started.history.append(e.history_row())
        self.quality = e
        if self.best_swd is None or e.swd < self.best_swd:
            self.best_swd = e.swd

    def _lr_pending(self, e: ev.LrPending) -> None:
        self.lr_pending = e

    def _lr_applied(self, e: ev.LrApplied) -> None:
        self.lr_pending = None
        if self.started is not None:
            self.started.lr_g, self.started.lr_d = e.lr_g, e.lr_d

    def _paused(self, e: ev.Paused) -> None:
        self.paused = e.reason
        self.pause_changes += 1

    def _resumed(self, e: ev.Resumed) -> None:
        self.paused = None
        self.pause_changes += 1

    def _auto_pause(self, e: ev.AutoPauseSet) -> None:
        self.auto_pause = e.on

    def _device_status(self, e: ev.DeviceStatus) -> None:
        self.device_status = e

    def _ended(self, e: ev.Finished | ev.Error) -> None:
        self.ended = e
        if isinstance(e, ev.Finished):
            self.step, self.epoch = e.step, e.epoch

    def _newest_checkpoint(self, e: ev.NewestCheckpoint) -> None:
        self.last_checkpoint = e

    def _writes_failing(self, e: ev.WritesFailing) -> None:
        self.writes_failing = e

    def _writes_recovered(self, e: ev.WritesRecovered) -> None:
        self.writes_failing = None

    def _disconnected(self, e: ev.Disconnected) -> None:
        self.disconnected = e

    def _attached(self, e: ev.Attached) -> None:
        """A service's snapshot: this view becomes the one it was made from."""
        self.loading = e.loading
        if e.started is not None:
            self._started(e.started)
        if e.progress is not None:
            self._progress(e.progress)
        self.samples, self.lr_pending, self.auto_pause = e.samples, e.lr_pending, e.auto_pause
        self.paused, self.viewers, self.device_status = e.paused, e.viewers, e.device_status
        self.last_checkpoint, self.writes_failing = e.last_checkpoint, e.writes_failing
        self.pause_changes += 1
        if self.report is not None:
            self.log.extend(e.log)


_HANDLERS: dict[type, Callable[[RunView, Any], None]] = {
    ev.Loading: RunView._loading,
    ev.Started: RunView._started,
    ev.Progress: RunView._progress,
    ev.Samples: RunView._samples,
    ev.EpochEnd: RunView._epoch_end,
    ev.Quality: RunView._quality,
    ev.LrPending: RunView._lr_pending,
    ev.LrApplied: RunView._lr_applied,
    ev.Paused: RunView._paused,
    ev.Resumed: RunView._resumed,
    ev.AutoPauseSet: RunView._auto_pause,
    ev.DeviceStatus: RunView._device_status,
    ev.Finished: RunView._ended,
    ev.Error: RunView._ended,
    ev.NewestCheckpoint: RunView._newest_checkpoint,
    ev.WritesFailing: RunView._writes_failing,
    ev.WritesRecovered: RunView._writes_recovered,
    ev.Disconnected: RunView._disconnected,
    ev.Attached: RunView._attached,
}
