"""The Textual app: the lifecycle of a run watched on screen.

The App builds and iterates the engine in a thread worker that only posts messages, hands
each event to the training screen (training_screen.py: the layout, the widgets, the keys'
actions), and decides when the process ends: on q, on SIGTERM or SIGHUP, when the engine
fails to start. torch is imported by the worker, never on the way to the first frame.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, SystemCommand
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from ..core import events as ev
from ..core.comparison import ComparedRun, RunSummary
from ..core.control import Control
from ..core.errors import UserError
from ..core.gcfreeze import freeze_long_lived_objects
from ..core.report import Report
from .keys import Scope, bindings, palette_keys
from .messages import EngineDone, EngineEvent, EngineFailed, EngineReady
from .state import RunState
from .terminal_graphics import Graphics
from .training_screen import TrainingScreen

#: Signals that end the app. In-process, they stop the engine (saving first); with a
#: service, they detach: the training goes on.
STOP_SIGNALS = {signal.SIGTERM: "terminated (SIGTERM)"}
if hasattr(signal, "SIGHUP"):
    STOP_SIGNALS[signal.SIGHUP] = "hung up (SIGHUP)"


class TuiGanApp(App[int]):
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses in other folders work
    TITLE = "tui-gan"
    # "-short" below 30 rows: a compact layout for 80x24 terminals
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]
    BINDINGS = bindings(Scope.APP)

    def __init__(self, make_engine: Callable[[], Any], run_name: str = "", screen_ab: Any = None,
                 detachable: bool = False, compare: ComparedRun | None = None,
                 list_runs: Callable[[Path], list[RunSummary]] | None = None, graphics: Graphics | None = None,
                 **kwargs: Any) -> None:
        """``make_engine`` is called in the worker thread (it may import torch, or connect
        to a service, and raise UserError); what it returns (an Engine, or a service's
        RemoteRun: ``control`` and ``run()``) is iterated there. ``detachable``: the run
        lives in a service, so leaving (d, a hang-up, SIGTERM) leaves it training; otherwise
        the engine is this process's and every way out stops it, saving first. ``screen_ab``
        (a ScreenAB) freezes the screen in alternate stretches to measure its cost
        (``tui-gan bench --app``). ``compare``: another run drawn on the chart from the start
        (--compare); ``list_runs``: how the run picker (o) lists a folder's runs
        (runs.run_summaries; without it, their states are not shown). ``graphics``: how images
        are drawn (terminal_graphics.py; default half blocks), decided before the app starts."""
        super().__init__(**kwargs)
        self.graphics = graphics or Graphics()
        self.make_engine = make_engine
        self.run_name = run_name
        self.screen_ab = screen_ab
        self.detachable = detachable
        self.detached = False
        self._source: Any = None  # what make_engine returned
        self.leaving = threading.Event()
        """Set when the app leaves: a make_engine still waiting for a service gives up."""
        self.finish_exits = False  # leave when training finishes (the app benchmark)
        self.control: Control | None = None
        self.exit_code = 0
        self.engine_done = threading.Event()
        self.training_screen = TrainingScreen(run_name, screen_ab)
        self.training_screen.compare_from_the_start(compare, list_runs)
        self._quitting: str | None = None
        # set (with _quitting) when the app wants the engine stopped; the worker checks it as
        # soon as the engine exists, so a stop requested while torch loads is not lost
        self._stop_requested = threading.Event()
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
        # Start the engine once the first frame is out: importing torch holds the GIL for
        # seconds and would otherwise delay it.
        self.call_after_refresh(self.set_timer, 0.05, self.run_engine)

    # ----------------------------------------------------------------- signals

    def _install_signal_handlers(self) -> None:
        """SIGTERM and SIGHUP save last.pt and exit.

        Plain signal handlers, not the event loop's: after SIGHUP the terminal is gone and
        Textual's output can block the loop for good. The handler asks the engine to stop
        (thread-safe), asks the app to exit, and starts a watchdog that ends the process once
        the checkpoint is written, should the app be unable to exit by itself."""
        if threading.current_thread() is not threading.main_thread():
            return  # signal.signal works in the main thread only (tests run apps elsewhere)
        self._previous_handlers = {sig: signal.signal(sig, self._signal_handler) for sig in STOP_SIGNALS}

    def _signal_handler(self, signum: int, _frame: Any) -> None:
        if self.detachable:
            self._on_detach_signal(signum)
        else:
            self._on_stop_signal(signum, STOP_SIGNALS.get(signum, f"signal {signum}"))
        watchdog = threading.Thread(target=self._exit_when_saved, name="tui-gan-exit", daemon=True)
        watchdog.start()

    def _on_stop_signal(self, sig: int, reason: str) -> None:
        if not self.exit_code:
            self.exit_code = 128 + int(sig)
        self._quitting = self._quitting or reason
        self._stop_requested.set()
        if self.control is not None:
            self.control.stop(reason)
        if self._loop is None:
            return  # not started yet: the worker sees _stop_requested
        try:
            self._loop.call_soon_threadsafe(self.stop_and_exit, reason)
        except RuntimeError:  # the loop is closed: the watchdog will exit
            pass

    def _on_detach_signal(self, sig: int) -> None:
        """Hang-up or SIGTERM with the run in a service: leave, and leave it training."""
        self.exit_code = self.exit_code or 128 + int(sig)
        self.detached = True
        self._hang_up()
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self.exit, self.exit_code, self.exit_code)
            except RuntimeError:
                pass

    def _hang_up(self) -> None:
        """Close the connection to the service: the worker's stream ends at once."""
        self.leaving.set()
        close = getattr(self._source, "close", None)
        if close is not None:
            close()

    def _exit_when_saved(self, grace: float = 2.0) -> None:
        self.engine_done.wait(timeout=600)
        time.sleep(grace)  # normally the app has exited by now and this thread is gone
        os._exit(self.exit_code or 1)

    # ----------------------------------------------------------------- worker

    @work(thread=True, exclusive=True, name="engine", exit_on_error=False)
    def run_engine(self) -> None:
        """Build the engine and forward its events. Touches no widget."""
        try:
            try:
                engine = self.make_engine()
            except UserError as exc:
                self.post_message(EngineFailed(str(exc), user_error=True))
                return
            if engine is None:
                return  # the app left before there was anything to watch
            self._source = engine
            if self.leaving.is_set():  # left while make_engine connected: hang up at once
                self._hang_up()
                return
            if self._stop_requested.is_set():
                engine.control.stop(self._quitting or "app closed")
            self.post_message(EngineReady(engine.control))
            try:
                for event in engine.run():
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
        self.control = message.engine_control
        self.training_screen.attach(self.control)
        if self._quitting:
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
            self.exit(self.exit_code, return_code=self.exit_code)

    @on(EngineEvent)
    def engine_event(self, message: EngineEvent) -> None:
        if not self.is_running or self._exit:
            return  # exiting: the widgets may be gone
        event = message.event
        if isinstance(event, ev.Started):
            freeze_long_lived_objects()
        self.training_screen.show_event(event)
        if isinstance(event, ev.Finished) and self.finish_exits:
            self.set_timer(0.5, self.exit)

    # ----------------------------------------------------------------- stopping

    def action_quit_safely(self) -> None:
        self.stop_and_exit("quit")

    def stop_and_exit(self, reason: str) -> None:
        """Save last.pt (the engine does it as it stops), then exit."""
        if self.engine_done.is_set():
            self.exit(self.exit_code, return_code=self.exit_code)
            return
        if self._quitting and self.state is RunState.STOPPING:
            return
        self._quitting = self._quitting or reason
        self._stop_requested.set()
        self.training_screen.set_state(RunState.STOPPING, "saving checkpoints/last.pt")
        self.training_screen.log_report_line(Report.stopping())
        if self.control is not None:
            self.control.stop(reason)

    def action_detach(self) -> None:
        if not self.detachable:
            self.notify("this training runs inside the app: q saves and quits", severity="warning")
            return
        # after q the run is stopping, and after its end there is nothing to detach from
        self.detached = not self._quitting and not self.engine_done.is_set()
        self._hang_up()
        self.exit(0, return_code=0)

    def on_unmount(self) -> None:
        """In-process, however the app ends, the engine stops and saves (the CLI waits for
        it); with a service, the app just hangs up."""
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        if self.detachable:
            self._hang_up()
            return
        self._stop_requested.set()
        if self.control is not None:
            self.control.stop(self._quitting or "app closed")

    # ----------------------------------------------------------------- command palette

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's commands, then one per key of keys.KEYS. The training screen's actions
        run on it whichever screen the palette was opened over, as they did when they were
        the App's."""
        yield from super().get_system_commands(screen)
        for key in palette_keys():
            target = self if key.scope is Scope.APP else self.training_screen
            yield SystemCommand(key.description, f"key: {key.shown}", partial(self.run_action, key.action, target))
