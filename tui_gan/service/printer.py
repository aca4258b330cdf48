"""The run's log lines as ``tui-gan --headless`` prints them and the service writes them to
train.log: core/report.py's lines (the same the app's event log shows), progress every
``log_every`` seconds.
"""

from __future__ import annotations

import threading
import time
from typing import TextIO

from ..core import events as ev
from ..core.contract import Event
from ..core.gcfreeze import freeze_long_lived_objects
from ..core.report import Report


class Printer:
    """Prints the report's lines (core/report.py); survives a closed terminal (SIGHUP)
    without losing the run. Progress lines come every ``log_every`` seconds, loading lines
    when the stage changes or, during a long decode, every ``log_every`` seconds."""

    def __init__(self, outs: list[TextIO], log_every: float):
        self.outs = outs
        self.log_every = log_every
        # the hub's thread writes its notes too; re-entrant: a signal handler prints from the
        # main thread, perhaps in the middle of one of its lines
        self._lock = threading.RLock()
        self.report = Report()
        self._last_log = 0.0
        self._loading = ""

    def line(self, text: str) -> None:
        with self._lock:
            for out in list(self.outs):
                try:
                    print(text, file=out, flush=True)
                except (OSError, ValueError):  # the terminal went away: keep training, stop printing there
                    self.outs.remove(out)

    def handle(self, event: Event) -> None:
        if isinstance(event, ev.Started):
            freeze_long_lived_objects()
            self._last_log = time.monotonic()
        if isinstance(event, (ev.Loading, ev.Progress)) and not self._due(event):
            self.report.observe(event)  # not printed now: formatting it would be wasted
            return
        for line in self.report.lines(event):
            self.line(line.full())

    def _due(self, event: ev.Loading | ev.Progress) -> bool:
        now = time.monotonic()
        if isinstance(event, ev.Loading) and event.message != self._loading:
            self._loading = event.message
        elif (isinstance(event, ev.Loading) and not event.total) or now - self._last_log < self.log_every:
            return False
        self._last_log = now
        return True
