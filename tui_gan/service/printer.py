"""The run's log lines as ``tui-gan --headless`` prints them and the service writes them to
train.log: core/report.py's lines (the same the app's event log shows), progress every
``log_every`` seconds. train.log is a LogFile: lines a full disk does not take are written
when it does again.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from typing import TextIO

from ..core import events as ev
from ..core.contract import Event
from ..core.gcfreeze import freeze_long_lived_objects
from ..core.report import Report
from ..core.writes import AppendFile


class LogFile:
    """A log file (train.log) that a full disk does not take lines from: each flush appends
    whole lines (core/writes.py's AppendFile), and the lines the disk does not take wait in
    memory (the newest MAX_HELD characters of them) for the next flush it does take. Never
    raises on a failed write: the Printer would give the file up."""

    MAX_HELD = 1 << 20

    def __init__(self, file: AppendFile) -> None:
        self.file = file
        self._held = ""
        self._lost = 0  # lines dropped from the front while the disk was full

    @classmethod
    def of(cls, stream: TextIO) -> TextIO | LogFile:
        """``stream`` (the service's stdout) as a LogFile when it is a file (the app started the
        service with its output in train.log), else as it is (a terminal, a pipe)."""
        try:
            fd = stream.fileno()
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return stream
            stream.flush()
        except (AttributeError, OSError, ValueError):
            return stream
        return cls(AppendFile(fd=fd))

    def write(self, text: str) -> int:
        self._held += text
        return len(text)

    def flush(self) -> None:
        if not self._held:
            return
        text = self._held
        if self._lost:
            text = f"[{self._lost:,} log line(s) lost while the disk took no writes]\n" + text
        try:
            self.file.write(text.encode("utf-8", "replace"))
        except OSError:
            if len(self._held) > self.MAX_HELD:
                cut = self._held.find("\n", len(self._held) - self.MAX_HELD) + 1 or len(self._held) - self.MAX_HELD
                self._lost += self._held.count("\n", 0, cut)
                self._held = self._held[cut:]
            return
        self._held, self._lost = "", 0

    def close(self) -> None:
        self.flush()
        self.file.close()


class Printer:
    """Prints the report's lines (core/report.py); survives a closed terminal (SIGHUP)
    without losing the run. Progress lines come every ``log_every`` seconds, loading lines
    when the stage changes or, during a long decode, every ``log_every`` seconds."""

    def __init__(self, outs: list[TextIO | LogFile], log_every: float):
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
