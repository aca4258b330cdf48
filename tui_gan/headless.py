"""Training in this process: headless mode and the training service.

The engine runs in the main thread and its events become log lines (core/report.py's, the
same the app's event log shows) and frames for any viewer on the run's socket (the hub).
``tui-gan --headless`` runs it in the foreground; the app starts it as a service: the same
command in a session of its own, its output in the run's train.log."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from .core import events as ev
from .core.config import launched_rank
from .core.control import Control
from .core.errors import UserError
from .core.gcfreeze import freeze_long_lived_objects
from .core.report import Report
from .core.rundir import RunDir
from .core.runview import RunView
from .exports.tensorboard_live import TensorBoardWriter
from .service.hub import Hub
from .service.runfiles import RunLock, ServiceRecord, socket_path

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


def run_headless(engine, printer: Printer, on_event: Callable[[Any], None] = lambda event: None,
                 stop_on_divergence: bool = True, signals: StopSignals | None = None) -> int:
    """Drive ``engine`` to the end, printing log lines and handing every event to
    ``on_event`` (the service's hub). Signals stop it cleanly (last.pt is written first;
    ``signals``: handlers the caller has installed, else this installs its own).
    Returns the process exit code: 0 finished, 1 training failed or diverged (the last good
    state is saved), 128+N stopped by signal N. ``stop_on_divergence``: stop a diverged run
    rather than leave it paused (when no viewer may be there to lower the learning rate)."""
    if signals is None:
        with StopSignals(engine.control, printer) as own:
            return run_headless(engine, printer, on_event, stop_on_divergence, own)
    code = 0
    for event in engine.run():
        on_event(event)
        printer.handle(event)
        if isinstance(event, ev.Error):
            code = 1
        elif isinstance(event, ev.Paused) and event.reason == "diverged" and stop_on_divergence:
            # nobody is there to lower the learning rate: keep the restored state and stop
            engine.control.stop("diverged")
            code = 1
    return signals.exit_code(code)


def serve_run(run_dir: RunDir, prepare: Callable[[Control], Any], printer: Printer, *, as_service: bool) -> int:
    """Train ``run_dir`` in this process and serve it to viewers (``tui-gan attach``): the
    one-writer lock, the socket and its hub, the service record. ``prepare(control)`` builds
    the engine (imports torch; UserError for bad input, which viewers are told too).
    ``as_service``: started by the app, output already in train.log; a diverged run waits,
    paused, for a viewer to lower its learning rates. Otherwise (--headless) the lines go to
    train.log too, and a diverged run stops: nobody may be watching."""
    control = Control()
    with StopSignals(control, printer) as signals:  # a signal at any point stops the run cleanly
        lock = RunLock(run_dir)
        lock.acquire()
        try:
            with contextlib.ExitStack() as files:
                if not as_service:
                    printer.outs.append(files.enter_context(open(run_dir.log, "a", encoding="utf-8")))
                return _serve(run_dir, control, prepare, printer, signals, as_service)
        finally:
            lock.release()


def _serve(run_dir: RunDir, control: Control, prepare: Callable[[Control], Any], printer: Printer,
           signals: StopSignals, as_service: bool) -> int:
    """serve_run's part once the run is locked: the hub and the record around the run."""
    hub = Hub(socket_path(run_dir.root), control, str(run_dir.root), note=printer.line)
    hub.start()
    launched = launched_rank()[1] > 1  # rank 0 of several: its parent launched it
    record = ServiceRecord(pid=os.getpid(), socket=str(hub.socket_path), launcher=os.getppid() if launched else None)
    record.write(run_dir)
    view = RunView()  # where the run got to and how it ended, for the record
    failure: str | None = None
    tensorboard = TensorBoardWriter(printer.line)  # idle unless the run's config asks for it
    try:
        engine = prepare(control)

        def on_event(event: Any) -> None:
            hub.publish(event)
            view.apply(event)
            tensorboard.observe(event)

        return run_headless(engine, printer, on_event, not as_service, signals)
    except BaseException as exc:
        message = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        hub.fail(message if isinstance(exc, UserError) else f"the training service failed ({message}); "
                 f"see {run_dir.log}")
        failure = message
        raise
    finally:
        tensorboard.close()  # the event file complete before the record says the run has ended
        hub.close()
        outcome = view.outcome()
        record.state, record.reason, record.message = outcome.state, outcome.reason, outcome.message
        if failure is not None:
            record.state, record.message = "failed", failure
        record.step, record.epoch, record.ended = outcome.step, outcome.epoch, time.time()
        record.images_per_sec = outcome.images_per_sec
        record.write(run_dir)


def follow_run(prepare: Callable[[Control], Any], rank: int) -> int:
    """A rank other than 0: train in step with rank 0 and produce nothing (rank 0 writes the
    run directory and serves viewers; engine/lockstep.py). Stop signals are left to rank 0,
    which gets them too and tells every rank to stop at the same step; a failure is one
    line naming this rank. Returns 0 when the run ended, 1 when it failed here."""
    for sig in SIGNAL_REASONS:
        if threading.current_thread() is threading.main_thread():
            signal.signal(sig, signal.SIG_IGN)
    from .engine.world import lost_peer_message

    control = Control()
    try:
        for event in prepare(control).run():
            if isinstance(event, ev.Error):
                print(f"tui-gan: rank {rank}: {event.message}", file=sys.stderr, flush=True)
                return 1
    except UserError as exc:
        print(f"tui-gan: rank {rank}: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - in setup, before the engine reports failures itself
        print(f"tui-gan: rank {rank}: {lost_peer_message(exc, type(exc).__name__ + ': ' + str(exc))}",
              file=sys.stderr, flush=True)
        return 1
    return 0
