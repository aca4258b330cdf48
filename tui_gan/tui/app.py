"""The Textual app: a window onto a run in a training service, and its lifecycle.

The App connects to the run in a thread worker that only posts messages, hands each event
to the training screen (training_screen.py: the layout, the run's state, the keys), and
decides when the process ends: on q (the run stops, saving last.pt first), on d, SIGHUP or
SIGTERM (the window closes, the run trains on), when the run cannot be reached. Nothing on
the way to the first frame imports torch: the run lives in another process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from rich.text import Text
from textual import on, work
from textual.app import App, SystemCommand
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from ..core import events as ev
from ..core.comparison import ComparedRun, RunSummary
from ..core.contract import Event, RunControl
from ..core.errors import UserError
from ..core.gcfreeze import freeze_long_lived_objects
from ..core.report import Report
from .keys import Scope, bindings, palette_keys
from .messages import EngineDone, EngineEvent, EngineFailed, EngineReady
from .state import RunState
from .terminal_graphics import Graphics
from .training_screen import TrainingScreen

#: Signals that close the window (the run trains on): a hang-up of the terminal, a kill.
LEAVE_SIGNALS = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])


class AttachedRun(Protocol):
    """What the app watches: a run in a training service, over its socket (service/client.py's
    RemoteRun). ``run()`` is its event stream; ``close()`` hangs up, ending that stream."""

    @property
    def control(self) -> RunControl: ...
    def run(self) -> Iterator[Event]: ...
    def close(self) -> None: ...


class TuiGanApp(App[int]):
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses in other folders work
    TITLE = "tui-gan"
    # "-short" below 30 rows: a compact layout for 80x24 terminals
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]
    BINDINGS = bindings(Scope.APP)

    def __init__(self, connect: Callable[[], AttachedRun | None], run_name: str = "",
                 compare: ComparedRun | None = None, list_runs: Callable[[Path], list[RunSummary]] | None = None,
                 graphics: Graphics | None = None, **kwargs: Any) -> None:
        """``connect`` is called in the worker thread: it connects to the run's service (it
        may wait for the service to start, giving up once ``leaving`` is set; None: it gave
        up) or raises UserError. ``compare``: another run drawn on the chart from the start
        (--compare); ``list_runs``: how the run picker (o) lists a folder's runs
        (commands/runstate.run_summaries). ``graphics``: how images are drawn (terminal_graphics.py;
        default half blocks), decided before the app starts."""
        super().__init__(**kwargs)
        self.graphics = graphics or Graphics()
        self.connect = connect
        self.run_name = run_name
        self.detached = False
        self._run: AttachedRun | None = None
        self.leaving = threading.Event()
        """Set when the app leaves: a ``connect`` still waiting for a service gives up."""
        self.control: RunControl | None = None
        self.exit_code = 0
        self.engine_done = threading.Event()
        """The run's event stream is over (it ended, or this window hung up)."""
        self.training_screen = TrainingScreen(run_name, compare, list_runs)
        self._quitting: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # for the signal handler's thread-safe call
        self._previous_handlers: dict[int, Any] = {}  # restored on unmount

    @property
    def state(self) -> RunState:
        return self.training_screen.state

    def get_default_screen(self) -> Screen:
        return self.training_screen

    async def on_load(self) -> None:
        self._loop = asyncio.get_running_loop()

    def on_mount(self) -> None:
        self._install_signal_handlers()
        # Connect once the first frame is out.
        self.call_after_refresh(self.set_timer, 0.05, self.run_engine)

    # ----------------------------------------------------------------- signals

    def _install_signal_handlers(self) -> None:
        """SIGHUP and SIGTERM close the window and leave the run training.

        Plain signal handlers, not the event loop's: after SIGHUP the terminal is gone and
        Textual's output can block the loop for good. The handler hangs up (thread-safe),
        asks the app to exit, and starts a watchdog that ends the process should the app be
        unable to exit by itself."""
        if threading.current_thread() is not threading.main_thread():
            return  # signal.signal works in the main thread only (tests run apps elsewhere)
        self._previous_handlers = {sig: signal.signal(sig, self._signal_handler) for sig in LEAVE_SIGNALS}

    def _signal_handler(self, signum: int, _frame: Any) -> None:
        self.leave_on_signal(signum)
        watchdog = threading.Thread(target=self._exit_when_gone, name="tui-gan-exit", daemon=True)
        watchdog.start()

    def leave_on_signal(self, signum: int) -> None:
        """Hang up and exit with 128 + ``signum``: the run trains on."""
        self.exit_code = self.exit_code or 128 + int(signum)
        self.detached = True
        self._hang_up()
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self.exit, self.exit_code, self.exit_code)
            except RuntimeError:  # the loop is closed: the watchdog will exit
                pass

    def _hang_up(self) -> None:
        """Close the connection to the service: the worker's stream ends at once."""
        self.leaving.set()
        if self._run is not None:
            self._run.close()

    def _exit_when_gone(self, grace: float = 2.0) -> None:
        self.engine_done.wait(timeout=600)
        time.sleep(grace)  # normally the app has exited by now and this thread is gone
        os._exit(self.exit_code or 1)

    # ----------------------------------------------------------------- worker

    @work(thread=True, exclusive=True, name="engine", exit_on_error=False)
    def run_engine(self) -> None:
        """Connect and forward the run's events. Touches no widget."""
        try:
            try:
                run = self.connect()
            except UserError as exc:
                self.post_message(EngineFailed(str(exc), user_error=True))
                return
            if run is None:
                return  # the app left before there was anything to watch
            self._run = run
            if self.leaving.is_set():  # left while connecting: hang up at once
                self._hang_up()
                return
            self.post_message(EngineReady(run.control))
            try:
                for event in run.run():
                    self.post_message(EngineEvent(event))
            except UserError as exc:
                self.post_message(EngineFailed(str(exc), user_error=True))
        finally:
            self.engine_done.set()
            self.post_message(EngineDone())

    @on(Worker.StateChanged)
    def worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.name == "engine" and event.state == WorkerState.ERROR:
            error = event.worker.error
            self.training_screen.set_state(RunState.ERROR, f"{type(error).__name__}: {error}")
            self.training_screen.log_line(f"engine failed: {type(error).__name__}: {error}", "bold red")
            if self._quitting:
                self.exit(self.exit_code or 1)

    @on(EngineReady)
    def engine_ready(self, message: EngineReady) -> None:
        self.control = message.run_control
        self.training_screen.attach(self.control)
        if self._quitting:  # q while connecting
            self.control.stop(self._quitting)

    @on(EngineFailed)
    def engine_failed(self, message: EngineFailed) -> None:
        if self.leaving.is_set():
            return  # detached already: nothing to report
        if message.user_error:
            self.exit(2, return_code=2, message=f"tui-gan: error: {message.message}")
        else:
            self.training_screen.set_state(RunState.ERROR, message.message)
            self.training_screen.log_line(f"error: {message.message}", "bold red")

    @on(EngineDone)
    def engine_done_message(self) -> None:
        if self._quitting:
            self.exit_with_run()

    def exit_with_run(self) -> None:
        """Exit with the exit code; a run whose final checkpoint could not be written (a full
        disk) makes it 1 and says, once the terminal is back, which checkpoint it has."""
        ended = self.training_screen.view.ended
        if isinstance(ended, ev.Finished) and ended.save_failed:
            code = self.exit_code or 1
            self.exit(code, return_code=code, message=Text(f"tui-gan: {Report.unsaved(ended).text}"))
            return
        self.exit(self.exit_code, return_code=self.exit_code)

    @on(EngineEvent)
    def engine_event(self, message: EngineEvent) -> None:
        if not self.is_running or self._exit:
            return  # exiting: the widgets may be gone
        event = message.event
        if isinstance(event, ev.Started):
            freeze_long_lived_objects()
        self.training_screen.show_event(event)

    # ----------------------------------------------------------------- leaving

    def action_quit_safely(self) -> None:
        self.stop_and_exit("quit")

    def stop_and_exit(self, reason: str) -> None:
        """Stop the run (its service saves last.pt as it stops), then exit."""
        if self.engine_done.is_set():
            self.exit_with_run()
            return
        if self._quitting and self.state is RunState.STOPPING:
            return
        self._quitting = self._quitting or reason
        self.training_screen.set_state(RunState.STOPPING, "saving checkpoints/last.pt")
        self.training_screen.log_report_line(Report.stopping())
        if self.control is not None:
            self.control.stop(reason)

    def action_detach(self) -> None:
        # after q the run is stopping, and after its end there is nothing to detach from
        self.detached = not self._quitting and not self.engine_done.is_set()
        self._hang_up()
        self.exit(0, return_code=0)

    def on_unmount(self) -> None:
        """However the app ends, it hangs up; the run goes on unless q stopped it."""
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        self._hang_up()

    # ----------------------------------------------------------------- command palette

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's commands, then one per key of keys.KEYS, then a conditional run's classes.
        The training screen's actions run on the training screen whichever screen the
        palette was opened over."""
        yield from super().get_system_commands(screen)
        for key in palette_keys():
            target = self if key.scope is Scope.APP else self.training_screen
            yield SystemCommand(key.description, f"key: {key.shown}", partial(self.run_action, key.action, target))
        yield from self.training_screen.class_commands()
