"""The in-process control of a run: the requests of core/contract.py, recorded for the
engine, which takes them at its next step boundary (states it follows, one-shots it serves
once; ``take_requests``). Thread-safe: viewers, signal handlers and the engine share it.

It also carries the run's ``WriteWatch`` (core/outage.py): made with it, before the engine,
so that the service's TensorBoard writer reports its failed writes to the same outage as
the engine's checkpoints and rows.
"""

from __future__ import annotations

import threading

from .contract import LrChange, RequestMethods, Requests, checked
from .outage import WriteWatch

__all__ = ["Control", "LrChange", "Requests"]


class Control(RequestMethods):
    """Thread-safe requests to a running engine, honoured at the next step boundary."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.wake = threading.Event()
        """Set by every request: a paused engine waits on it."""
        self._requests = Requests()
        self.writes = WriteWatch()
        """The run's writes to its directory (module docstring)."""

    def submit(self, op: str, **args: object) -> None:
        """Record request ``op`` (RequestError when it or its arguments are not the table's)."""
        spec, value = checked(op, args)
        with self._lock:
            self._requests = spec.merge(self._requests, value)
        self.wake.set()

    def toggle_pause(self) -> bool:
        with self._lock:  # atomic: the engine may pause this run (diverged) at the same time
            pause = self._requests.pause is None
            spec, value = checked("pause" if pause else "resume", {})
            self._requests = spec.merge(self._requests, value)
        self.wake.set()
        return pause

    @property
    def paused(self) -> bool:
        return self._requests.pause is not None

    @property
    def pause_reason(self) -> str:
        return self._requests.pause or "requested"

    @property
    def stop_reason(self) -> str | None:
        return self._requests.stop

    @property
    def pause_at_epoch_end(self) -> bool:
        return self._requests.auto_pause

    @pause_at_epoch_end.setter
    def pause_at_epoch_end(self, on: bool) -> None:
        self.set_pause_at_epoch_end(on)

    def follow(self, states: Requests) -> None:
        """A rank other than 0: take rank 0's states (pause, stop) as they were sent."""
        with self._lock:
            stop = self._requests.stop or states.stop
            self._requests = Requests(pause=states.pause, stop=stop, auto_pause=self._requests.auto_pause)

    def take_requests(self) -> Requests:
        """The pending requests; the one-shots among them are cleared."""
        with self._lock:
            out = self._requests
            self._requests = out.states()
            self.wake.clear()
        return out
