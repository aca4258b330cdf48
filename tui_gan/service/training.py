"""Training a run in this process and serving it: the one-writer lock, the socket's hub,
the service record and the TensorBoard writer around the engine, which runs in the main
thread. The app's service (service/main.py) and ``tui-gan --headless`` both train here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from ..core import events as ev
from ..core.config import launched_rank
from ..core.contract import Event, EventSource
from ..core.control import Control
from ..core.errors import UserError
from ..core.rundir import RunDir
from ..core.runview import RunView
from ..core.writes import AppendFile
from ..exports.tensorboard_live import TensorBoardWriter
from .hub import Hub
from .printer import LogFile, Printer
from .runfiles import RunLock, ServiceRecord, socket_path
from .signals import StopSignals


def run_headless(engine: EventSource, printer: Printer, on_event: Callable[[Event], None] = lambda event: None,
                 stop_on_divergence: bool = True, signals: StopSignals | None = None) -> int:
    """Drive ``engine`` to the end, printing log lines and handing every event to
    ``on_event`` (the service's hub). Signals stop it cleanly (last.pt is written first;
    ``signals``: handlers the caller has installed, else this installs its own).
    Returns the process exit code: 0 finished, 1 training failed or diverged (the last good
    state is saved) or its final checkpoint could not be written (a full disk), 128+N
    stopped by signal N. ``stop_on_divergence``: stop a diverged run rather than leave it
    paused (when no viewer may be there to lower the learning rate)."""
    if signals is None:
        with StopSignals(engine.control, printer) as own:
            return run_headless(engine, printer, on_event, stop_on_divergence, own)
    code = 0
    for event in engine.run():
        on_event(event)
        printer.handle(event)
        if isinstance(event, ev.Error) or (isinstance(event, ev.Finished) and event.save_failed):
            code = 1
        elif isinstance(event, ev.Paused) and event.reason == "diverged" and stop_on_divergence:
            # nobody is there to lower the learning rate: keep the restored state and stop
            engine.control.stop("diverged")
            code = 1
    return signals.exit_code(code)


def serve_run(run_dir: RunDir, prepare: Callable[[Control], EventSource], printer: Printer, *,
              as_service: bool) -> int:
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
                    log = LogFile(AppendFile(run_dir.log))
                    files.callback(log.close)
                    printer.outs.append(log)
                return _serve(run_dir, control, prepare, printer, signals, as_service)
        finally:
            lock.release()


def _serve(run_dir: RunDir, control: Control, prepare: Callable[[Control], EventSource], printer: Printer,
           signals: StopSignals, as_service: bool) -> int:
    """serve_run's part once the run is locked: the hub and the record around the run."""
    hub = Hub(socket_path(run_dir.root), control, str(run_dir.root), note=printer.line)
    hub.start()
    launched = launched_rank()[1] > 1  # rank 0 of several: its parent launched it
    record = ServiceRecord(pid=os.getpid(), socket=str(hub.socket_path), launcher=os.getppid() if launched else None)
    before = ServiceRecord.read(run_dir)  # a resumed run's: its state until this service trains it
    write_record(record, run_dir, printer)  # "running": what viewers wait for, and what a death leaves behind
    view = RunView()  # where the run got to and how it ended, for the record
    failure: str | None = None
    tensorboard = TensorBoardWriter(printer.line, control.writes)  # idle unless the run's config asks for it
    try:
        engine = prepare(control)

        def on_event(event: Event) -> None:
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
        record.end(view.outcome(), failure)
        if view.started is None and before is not None:
            record = before  # nothing trained (a resume that failed, or stopped, in its setup): the run is as it was
        write_record(record, run_dir, printer)


def write_record(record: ServiceRecord, run_dir: RunDir, printer: Printer) -> None:
    """Write the service's record; a disk that takes no writes is a warning line, not the
    end of the service."""
    failure = record.write(run_dir)
    if failure is not None:
        printer.line(f"warning: cannot write {run_dir.service_record} ({failure}); 'tui-gan ls' may not show "
                     f"this run's state")
