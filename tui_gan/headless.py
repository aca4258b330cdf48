"""Headless mode: the same engine, reported as log lines (for scripts, CI and nohup)."""

from __future__ import annotations

import signal
import sys
import time
from typing import Any, TextIO

from . import events as ev
from .gcfreeze import freeze_long_lived_objects
from .metrics import format_duration

SIGNAL_REASONS = {
    signal.SIGINT: "interrupted (Ctrl+C)",
    signal.SIGTERM: "terminated (SIGTERM)",
}
if hasattr(signal, "SIGHUP"):
    SIGNAL_REASONS[signal.SIGHUP] = "hung up (SIGHUP)"


def format_quality(q: ev.Quality) -> str:
    levels = " / ".join(f"{v:.1f}" for v in q.swd_levels)
    return (f"quality at step {q.step}: SWD {q.swd:.2f} (levels {levels}) · diversity {q.diversity:.2f} "
            f"· {q.images} images, {q.seconds:.1f}s")


def format_progress(p: ev.Progress, epochs: int) -> str:
    return (
        f"epoch {p.epoch + 1}/{epochs} step {p.step}/{p.total_steps} | "
        f"loss_D {p.loss_d:.3f} loss_G {p.loss_g:.3f} | "
        f"D(x) {p.d_x:.3f} D(G(z)) {p.d_g_z1:.3f}/{p.d_g_z2:.3f} | "
        f"{p.images_per_sec:,.0f} img/s | ETA {format_duration(p.eta_s)}"
    )


class Printer:
    """Writes log lines; survives a closed terminal (SIGHUP) without losing the run."""

    def __init__(self, out: TextIO, log_every: float):
        self.out = out
        self.log_every = log_every
        self._last_log = 0.0
        self._last_progress: ev.Progress | None = None
        self._epochs = 0
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
        if isinstance(event, ev.Loading):
            now = time.monotonic()
            if event.message != self._loading:
                self._loading = event.message
                self._last_log = now
                self.line(f"{event.message}…")
            elif event.total and now - self._last_log >= self.log_every:  # a long decode
                self._last_log = now
                self.line(f"{event.message}… {event.done * 100 // event.total}% ({event.done:,}/{event.total:,})")
        elif isinstance(event, ev.Started):
            freeze_long_lived_objects()
            cfg = event.config
            self._epochs = cfg["epochs"]
            self._last_log = time.monotonic()
            resumed = f" · resumed from {event.resumed_from} at step {event.step}" if event.resumed_from else ""
            self.line(
                f"training on {event.device} · preset {event.preset} "
                f"({cfg['image_size']}x{cfg['image_size']}, ngf={cfg['ngf']}, ndf={cfg['ndf']}, "
                f"batch {cfg['batch_size']}) · data {event.dataset} · "
                f"{event.steps_per_epoch} steps/epoch · run {event.run_dir}{resumed}"
            )
        elif isinstance(event, ev.Progress):
            self._last_progress = event
            now = time.monotonic()
            if now - self._last_log >= self.log_every:
                self._last_log = now
                self.line(format_progress(event, self._epochs))
        elif isinstance(event, ev.EpochEnd):
            p = self._last_progress
            stats = f" · loss_D {p.loss_d:.3f} loss_G {p.loss_g:.3f}" if p else ""
            self.line(f"epoch {event.epoch}/{self._epochs} done at step {event.step}{stats} · samples {event.sample_path}")
        elif isinstance(event, ev.SnapshotSaved):
            self.line(f"snapshot saved: {event.checkpoint_path}")
        elif isinstance(event, ev.Exported):
            self.line(f"samples exported: {event.path}")
        elif isinstance(event, ev.LrPending):
            self.line(f"learning rates G {event.lr_g:g} D {event.lr_d:g} pending until the epoch ends")
        elif isinstance(event, ev.LrApplied):
            self.line(f"learning rates applied: G {event.lr_g:g} D {event.lr_d:g}")
        elif isinstance(event, ev.Paused):
            self.line(f"paused at step {event.step}")
        elif isinstance(event, ev.Resumed):
            self.line(f"resumed at step {event.step}")
        elif isinstance(event, ev.EngineWarning):
            self.line(f"warning: {event.message}")
        elif isinstance(event, ev.Quality):
            self.line(format_quality(event))
        elif isinstance(event, ev.Finished):
            if event.checkpoint_path is None:
                self.line(f"stopped before training started: {event.reason}")
                return
            self.line(
                f"finished ({event.reason.replace('_', ' ')}): {event.step} steps, epoch {event.epoch}/{self._epochs}, "
                f"{format_duration(event.elapsed_s)} training, {event.images_per_sec:,.0f} img/s · "
                f"checkpoint {event.checkpoint_path}"
            )
        elif isinstance(event, ev.Error):
            saved = f"; checkpoint saved to {event.checkpoint_path}" if event.checkpoint_path else "; no checkpoint could be saved"
            self.line(f"error: {event.message}{saved}")


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
                printer.line("stopping: saving checkpoints/last.pt …")

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
