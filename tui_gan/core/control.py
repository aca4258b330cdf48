"""Requests to a running engine, from any thread: the viewer -> engine half of the contract.

A viewer calls Control's methods; the engine honours them at its next step boundary:
pause and stop as states it checks, the one-shot requests (snapshot, export, measure,
latent walks, learning rates) as one ``Requests`` value it takes and clears at once.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class LrChange:
    """New learning rates (None: keep that net's), at the next epoch boundary or ``now``."""

    lr_g: float | None
    lr_d: float | None
    now: bool = False


@dataclass(frozen=True)
class Requests:
    """The one-shot requests pending at a step boundary."""

    snapshot: bool = False
    export: bool = False
    measure: bool = False
    interpolate: bool = False
    lr: LrChange | None = None
    auto_pause: bool | None = None
    """Pausing at every epoch's end was switched on (True) or off (False)."""
    show_average: bool | None = None
    """--ema: samples from the generator's average (True) or the live generator (False)."""


class Control:
    """Thread-safe requests to a running engine, honoured at the next step boundary."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.wake = threading.Event()
        """Set by every request: a paused engine waits on it."""
        self._paused = False
        self.pause_reason = "requested"
        self._stop_reason: str | None = None
        self._requests = Requests()
        self.pause_at_epoch_end = False

    def pause(self, reason: str = "requested") -> None:
        with self._lock:
            self._paused, self.pause_reason = True, reason
        self.wake.set()

    def resume(self) -> None:
        with self._lock:
            self._paused = False
        self.wake.set()

    def toggle_pause(self) -> bool:
        """Flip pause; return True if a pause is now requested."""
        with self._lock:
            self._paused = not self._paused
            self.pause_reason = "requested"
            paused = self._paused
        self.wake.set()
        return paused

    def stop(self, reason: str = "stopped") -> None:
        """Save last.pt and finish. The first reason given is kept."""
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
        self.wake.set()

    def snapshot(self) -> None:
        self._request(snapshot=True)

    def export(self) -> None:
        self._request(export=True)

    def measure(self) -> None:
        """Measure the sample quality (SWD, diversity) now rather than at the epoch's end."""
        self._request(measure=True)

    def interpolate(self) -> None:
        """Render the latent walks (see engine/interpolation.py) with the current generator."""
        self._request(interpolate=True)

    def set_pause_at_epoch_end(self, on: bool) -> None:
        """Pause at every epoch's end from now on (or no longer); the engine reports the
        change as an AutoPauseSet event, so every viewer shows it."""
        self.pause_at_epoch_end = bool(on)
        self._request(auto_pause=bool(on))

    def show_average(self, on: bool) -> None:
        """--ema: show (and save) the samples of the generator's average, or of the live
        generator; the engine answers with fresh Samples, so every viewer shows the change."""
        self._request(show_average=bool(on))

    def set_lr(self, lr_g: float | None = None, lr_d: float | None = None, now: bool = False) -> None:
        """New learning rates: applied at the next epoch boundary, or at the next step if ``now``."""
        for name, value in (("lr_g", lr_g), ("lr_d", lr_d)):
            if value is not None and (not math.isfinite(value) or value <= 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        self._request(lr=LrChange(lr_g, lr_d, now))

    def _request(self, **changes: object) -> None:
        with self._lock:
            self._requests = replace(self._requests, **changes)
        self.wake.set()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    def take_requests(self) -> Requests:
        """Return and clear the pending one-shot requests."""
        with self._lock:
            out, self._requests = self._requests, Requests()
            self.wake.clear()
        return out
