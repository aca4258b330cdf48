"""The signals that stop a training process: SIGINT, SIGTERM and SIGHUP become a stop
request (the run saves last.pt first) and the exit code 128+N."""

from __future__ import annotations

import signal
import threading
from typing import Any

from ..core.control import Control
from ..core.report import Report
from .printer import Printer

SIGNAL_REASONS: dict[int, str] = {
    signal.SIGINT: "interrupted (Ctrl+C)",
    signal.SIGTERM: "terminated (SIGTERM)",
}
if hasattr(signal, "SIGHUP"):
    SIGNAL_REASONS[signal.SIGHUP] = "hung up (SIGHUP)"


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP ask the run to stop (it saves last.pt first), for as long
    as this is entered: in the service, from before the lock is taken until its record
    says how the run ended, so no signal can leave a run that saved reported as lost."""

    def __init__(self, control: Control, printer: Printer) -> None:
        self.control = control
        self.printer = printer
        self.received: list[int] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # (tests run services in threads)
            self._previous = {sig: signal.signal(sig, self._on_signal) for sig in SIGNAL_REASONS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.received.append(signum)
        if len(self.received) == 1:
            self.control.stop(SIGNAL_REASONS.get(signum, f"signal {signum}"))
            if signum != getattr(signal, "SIGHUP", None):
                self.printer.line(Report.stopping().text)

    def exit_code(self, code: int) -> int:
        """128+N when signal N stopped a run that would otherwise have exited 0."""
        return 128 + self.received[0] if self.received and code == 0 else code


def ignore_stop_signals() -> None:
    """A rank other than 0 leaves the stop signals to rank 0, which gets them too and has
    every rank stop at the same step."""
    if threading.current_thread() is threading.main_thread():
        for sig in SIGNAL_REASONS:
            signal.signal(sig, signal.SIG_IGN)
