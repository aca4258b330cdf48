"""Headless mode: the same engine, reported as log lines (for scripts, CI and nohup).

The lines are the report's (core/report.py), the same the app's event log shows."""

from __future__ import annotations

import signal
import sys
import time
from typing import Any, TextIO

from .core import events as ev
from .core.gcfreeze import freeze_long_lived_objects
from .core.report import Report

SIGNAL_REASONS = {
    signal.SIGINT: "interrupted (Ctrl+C)",
    signal.SIGTERM: "terminated (SIGTERM)",
}
if hasattr(signal, "SIGHUP"):
    SIGNAL_REASONS[signal.SIGHUP] = "hung up (SIGHUP)"


class Printer:
    """Prints the report's lines (core/report.py); survives a closed terminal (SIGHUP)
    without losing the run. Progress lines come every ``log_every`` seconds, loading lines
    when the stage changes or, during a long decode, every ``log_every`` seconds."""

    def __init__(self, out: TextIO, log_every: float):
        self.out = out
        self.log_every = log_every
        self.report = Report()
        self._last_log = 0.0
        self._loading = ""
        self._broken = False

    def line(self, text: str) -> None:
        if self._broken:
            return
        try:
            print(text, file=self.out, flush=True)
        except (OSError, ValueError):  # the terminal went away: keep training, stop printing
            self._broken = True

    def handle(self, event: Any) -> None:
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


def run_headless(engine, out: TextIO | None = None, log_every: float = 5.0) -> int:
    """Drive ``engine`` to the end, printing log lines. Signals stop it cleanly (last.pt is
    written first). Returns the process exit code: 0 finished, 1 training failed or
    diverged (the last good state is saved), 128+N stopped by signal N."""
    printer = Printer(out or sys.stdout, log_every)
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        if len(received) == 1:
            engine.control.stop(SIGNAL_REASONS.get(signum, f"signal {signum}"))
            if signum != getattr(signal, "SIGHUP", None):
                printer.line(Report.stopping().text)

    previous = {sig: signal.signal(sig, on_signal) for sig in SIGNAL_REASONS}
    code = 0
    try:
        for event in engine.run():
            printer.handle(event)
            if isinstance(event, ev.Error):
                code = 1
            elif isinstance(event, ev.Paused) and event.reason == "diverged":
                # nobody is there to lower the learning rate: keep the restored state and stop
                engine.control.stop("diverged")
                code = 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received and code == 0:
        code = 128 + received[0]
    return code
