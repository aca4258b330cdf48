"""The Textual app: watch the GAN learn and steer it from the keyboard.

The engine runs in a thread worker that only iterates it and posts messages; everything
that touches widgets happens here, in the message handlers. torch is imported by the
worker, never on the way to the first frame.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, RichLog
from textual.worker import Worker, WorkerState

from . import events as ev
from .errors import UserError
from .gcfreeze import freeze_long_lived_objects
from .metrics import COLUMNS  # standard library only: no torch on the way to the first frame
from .messages import EngineDone, EngineEvent, EngineFailed, EngineReady
from .widgets.gauges import Gauge
from .widgets.loss_chart import LossChart
from .widgets.samples import SamplesView
from .widgets.status import StatusPanel
from .widgets.throttle import Throttle

GAUGES = (("d_x", "D(x)"), ("d_g_z1", "D(G(z1))"), ("d_g_z2", "D(G(z2))"))
#: Seconds between redraws of the numbers (status, gauges). Every redraw holds the GIL that
#: the training thread needs between its operations; see README, "Speed of the app".
PROGRESS_REDRAW_S = 1.0
STOP_SIGNALS = {signal.SIGTERM: "terminated (SIGTERM)"}
if hasattr(signal, "SIGHUP"):
    STOP_SIGNALS[signal.SIGHUP] = "hung up (SIGHUP)"

#: (key, action, description) for the footer, the help screen and the command palette.
KEYS = (
    ("space", "toggle_pause", "Pause / resume"),
    ("s", "snapshot", "Snapshot: full checkpoint + sample PNG"),
    ("e", "export", "Export the samples as a PNG grid"),
    ("l", "learning_rate", "Change the learning rates"),
    ("a", "toggle_auto_pause", "Pause at every epoch end (on/off)"),
    ("y", "toggle_log_scale", "Loss chart: log scale (on/off)"),
    ("c", "toggle_chart", "Chart: losses / quality (SWD, diversity)"),
    ("[", "browse(-1)", "Samples: the previous epoch's end"),
    ("]", "browse(1)", "Samples: the next epoch's end, then live"),
    ("g", "gif", "Write the progression GIF of the epoch-end samples"),
    ("i", "interpolate", "Latent walks: interpolation between fixed latent vectors"),
    ("m", "measure", "Measure the quality now (it is measured at every epoch end)"),
    ("t", "toggle_theme", "Dark / light theme"),
    ("?", "help", "This help"),
    ("q", "quit_safely", "Save last.pt and quit"),
)


def _as_array(images: Any):
    return images.numpy() if hasattr(images, "numpy") else images


class TuiGanApp(App[int]):
    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses in other folders work
    TITLE = "tui-gan"
    # "-short" below 30 rows: a compact layout for 80x24 terminals
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall")]
    BINDINGS = [
        Binding("space", "toggle_pause", "Pause"),
        Binding("s", "snapshot", "Snapshot"),
        Binding("e", "export", "Export"),
        Binding("l", "learning_rate", "LR"),
        Binding("a", "toggle_auto_pause", "Auto-pause"),
        Binding("y", "toggle_log_scale", "Log", show=False),
        Binding("c", "toggle_chart", "Chart", show=False),
        Binding("m", "measure", "Measure", show=False),
        Binding("left_square_bracket", "browse(-1)", "Earlier", show=False),
        Binding("right_square_bracket", "browse(1)", "Later", show=False),
        Binding("g", "gif", "GIF", show=False),
        Binding("i", "interpolate", "Walks", show=False),
        Binding("t", "toggle_theme", "Theme", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit_safely", "Quit"),
        Binding("ctrl+c", "quit_safely", "Quit", show=False, priority=True),
        Binding("ctrl+q", "quit_safely", "Quit", show=False, priority=True),
    ]

    def __init__(self, make_engine: Callable[[], Any], run_name: str = "", screen_ab: Any = None,
                 **kwargs: Any) -> None:
        """``make_engine`` is called in the worker thread (it may import torch and raise
        UserError); the engine it returns is iterated there. ``screen_ab`` (a ScreenAB)
        freezes the screen in alternate stretches to measure its cost (``tui-gan bench --app``)."""
        super().__init__(**kwargs)
        self.screen_ab = screen_ab
        self.finish_exits = False  # leave when training finishes (the app benchmark)
        self.make_engine = make_engine
        self.run_name = run_name
        self.control: Any = None
        self.state = "loading…"
        self.exit_code = 0
        self.engine_done = threading.Event()
        self._quitting: str | None = None
        # set (with _quitting) when the app wants the engine stopped; the worker checks it as
        # soon as the engine exists, so a stop requested while torch loads is not lost
        self._stop_requested = threading.Event()
        self._epochs = 0
        self._progress: ev.Progress | None = None  # the newest progress not yet drawn
        self._progress_redraws = Throttle(self, PROGRESS_REDRAW_S, self._draw_progress)
        self._run_dir = ""
        self._live_samples: tuple[int, Any] | None = None
        self._epoch_samples: list[tuple[int, Any]] = []  # (epoch, uint8 images) of each epoch's end
        self._browsing: int | None = None  # index into _epoch_samples, None: live

    # ----------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="◐")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield LossChart(id="chart")
                with Vertical(id="gauges"):
                    for key, label in GAUGES:
                        yield Gauge(label, id=f"gauge-{key}")
                log = RichLog(id="log", markup=True, wrap=True, max_lines=1000)
                log.can_focus = False  # it would take space (pause) for scrolling; the mouse still scrolls it
                yield log
            with Vertical(id="right"):
                yield SamplesView(id="samples")
                yield StatusPanel(id="status")
        yield Footer()

    async def on_load(self) -> None:
        self._loop = asyncio.get_running_loop()

    def on_mount(self) -> None:
        # Held, not queried: a query on the app searches the active screen only, which is
        # the help or learning-rate dialog while one is open.
        self.status_panel = self.query_one(StatusPanel)
        self.chart = self.query_one(LossChart)
        self.samples_view = self.query_one(SamplesView)
        self.event_log = self.query_one(RichLog)
        self.gauges = {key: self.query_one(f"#gauge-{key}", Gauge) for key, _ in GAUGES}
        self.sub_title = self.run_name or "loading…"
        self.query_one("#chart").border_title = "Losses"
        self.query_one("#gauges").border_title = "Discriminator's verdicts"
        self.query_one("#samples").border_title = "Samples (fixed noise)"
        self.query_one("#status").border_title = "Status"
        self.query_one("#log").border_title = "Events"
        self._install_signal_handlers()
        self.log_line("loading torch and the data…", "dim")
        # Start the engine once the first frame is out: importing torch holds the GIL for
        # seconds and would otherwise delay it.
        self.call_after_refresh(self.set_timer, 0.05, self.run_engine)

    def _install_signal_handlers(self) -> None:
        """SIGTERM and SIGHUP save last.pt and exit.

        Plain signal handlers, not the event loop's: after SIGHUP the terminal is gone and
        Textual's output can block the loop for good. The handler asks the engine to stop
        (thread-safe), asks the app to exit, and starts a watchdog that ends the process once
        the checkpoint is written, should the app be unable to exit by itself."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._previous_handlers = {sig: signal.signal(sig, self._signal_handler) for sig in STOP_SIGNALS}

    def _signal_handler(self, signum: int, _frame: Any) -> None:
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
        try:
            self._loop.call_soon_threadsafe(self.stop_and_exit, reason)
        except (AttributeError, RuntimeError):  # no loop any more: the watchdog will exit
            pass

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
            self.set_state("error", f"{type(error).__name__}: {error}")
            self.log_line(f"engine failed: {type(error).__name__}: {error}", "bold red")
            if self._quitting:
                self.exit(self.exit_code or 1)

    @on(EngineReady)
    def engine_ready(self, message: EngineReady) -> None:
        self.control = message.engine_control
        self.control.pause_at_epoch_end = self.status_panel.auto_pause
        if self._quitting:
            self.control.stop(self._quitting)

    @on(EngineFailed)
    def engine_failed(self, message: EngineFailed) -> None:
        if message.user_error:
            self.exit(2, return_code=2, message=f"tui-gan: error: {message.message}")
        else:
            self.set_state("error", message.message)
            self.log_line(f"error: {message.message}", "bold red")

    @on(EngineDone)
    def engine_done_message(self) -> None:
        if self._quitting:
            self.exit(self.exit_code, return_code=self.exit_code)

    # ----------------------------------------------------------------- engine events

    @on(EngineEvent)
    def engine_event(self, message: EngineEvent) -> None:
        event = message.event
        handler = getattr(self, f"_on_{type(event).__name__}", None)
        if handler is not None and self.is_running and not self._exit:
            handler(event)

    def _on_Loading(self, e: ev.Loading) -> None:
        detail = e.message + (f" {e.done * 100 // e.total}%" if e.total else "")
        self.set_state("loading…", detail)

    def _on_Started(self, e: ev.Started) -> None:
        freeze_long_lived_objects()
        if self.screen_ab is not None:
            self.screen_ab.start()
        status = self.status_panel
        cfg = e.config
        self._epochs = cfg["epochs"]
        status.epochs, status.epoch, status.step = cfg["epochs"], e.epoch, e.step
        status.total_steps, status.device, status.run_dir = e.total_steps, e.device, e.run_dir
        self._run_dir = e.run_dir
        self._epoch_samples = list(e.progression)  # a resumed run's earlier epochs
        status.lr_g, status.lr_d = e.lr_g, e.lr_d
        self.sub_title = e.run_dir.rstrip("/").split("/")[-1]
        if e.history:
            rows = [dict(zip(e.history_columns, r)) for r in e.history]
            self.chart.add_rows(rows)
            for key, _ in GAUGES:
                self.gauges[key].extend_history([r[key] for r in rows if math.isfinite(r[key])])
        status.epoch_step, status.steps_per_epoch = e.step - e.epoch * e.steps_per_epoch, e.steps_per_epoch
        resumed = f", resumed from step {e.step}" if e.resumed_from else ""
        self.log_line(
            f"training on {e.device}, preset {e.preset} ({cfg['image_size']}×{cfg['image_size']}, "
            f"batch {cfg['batch_size']}), data {e.dataset}{resumed}"
        )
        for path in e.skipped[:3]:
            self.log_line(f"skipped unreadable file {path}", "yellow")
        self.set_state("pausing…" if self.control and self.control.paused else "training")

    def _on_Progress(self, e: ev.Progress) -> None:
        """Rows go to the chart at once (every one counts); the numbers are redrawn at most
        every PROGRESS_REDRAW_S, showing the newest."""
        if self.screen_ab is not None:
            self.screen_ab.record(e.step)
            if not self.screen_ab.updating():
                return
        if e.row is not None:
            self.chart.add_rows([dict(zip(COLUMNS, e.row))])
        self._progress = e
        self._progress_redraws.request()

    def _draw_progress(self) -> None:
        e, self._progress = self._progress, None
        if e is None or not self.is_running:
            return
        status = self.status_panel
        status.epoch, status.step, status.total_steps = e.epoch, e.step, e.total_steps
        if e.images_per_sec:
            status.images_per_sec = e.images_per_sec
        status.eta, status.lr_g, status.lr_d = e.eta_s, e.lr_g, e.lr_d
        status.epoch_step, status.steps_per_epoch = e.epoch_step, e.steps_per_epoch
        for key, _ in GAUGES:
            self.gauges[key].update_value(getattr(e, key))
        status.redraw()

    def _on_Samples(self, e: ev.Samples) -> None:
        if self.screen_ab is not None and not self.screen_ab.updating():
            return
        self._live_samples = (e.step, _as_array(e.images))
        if self._browsing is None:
            self._show_live()

    def _show_live(self) -> None:
        if self._live_samples is None:
            return
        step, images = self._live_samples
        self.samples_view.set_images(images)
        self.samples_view.border_subtitle = f"step {step}"

    def _on_EpochEnd(self, e: ev.EpochEnd) -> None:
        self.log_line(f"epoch {e.epoch}/{self._epochs} done at step {e.step}; samples {e.sample_path}")
        if e.images is not None:
            self._epoch_samples.append((e.epoch, _as_array(e.images)))

    def action_browse(self, delta: int) -> None:
        """``[`` (delta -1) and ``]`` (+1): step through the epoch-end samples; past the
        newest, back to the live samples."""
        history = self._epoch_samples
        if not history:
            self.notify("no epoch has ended yet: the samples of each epoch's end are kept here", severity="warning")
            return
        if self._browsing is None:
            if delta > 0:
                return  # already live
            index = len(history) - 1
        else:
            index = self._browsing + delta
        if index >= len(history):
            self._browsing = None
            self._show_live()
            return
        self._browsing = max(0, index)
        epoch, images = history[self._browsing]
        self.samples_view.set_images(images)
        self.samples_view.border_subtitle = f"epoch {epoch} · {self._browsing + 1}/{len(history)} · ] live"

    def action_interpolate(self) -> None:
        if self._require_engine("render the latent walks"):
            self.control.interpolate()
            self.log_line("latent walks requested…", "dim")

    def _on_Interpolation(self, e: ev.Interpolation) -> None:
        from .widgets.interpolation import InterpolationScreen

        if isinstance(self.screen, InterpolationScreen):
            self.screen.dismiss(None)
        self.push_screen(InterpolationScreen(_as_array(e.frames), e.step, self._run_dir))

    def action_gif(self) -> None:
        if not self._run_dir:
            self.notify("no run directory yet", severity="warning")
            return
        self.log_line("writing the progression GIF…", "dim")
        self._write_gif(self._run_dir)

    @work(thread=True, exclusive=True, group="gif", exit_on_error=False)
    def _write_gif(self, run_dir: str) -> None:
        from .progression import epoch_grids, make_gif

        try:
            path = make_gif(run_dir)
            self.call_from_thread(self.log_line, f"progression GIF ({len(epoch_grids(run_dir))} epochs): {path}", "green")
        except UserError as exc:
            self.call_from_thread(self.log_line, f"no GIF: {exc}", "yellow")

    def _on_SnapshotSaved(self, e: ev.SnapshotSaved) -> None:
        self.log_line(f"snapshot saved: {e.checkpoint_path} (samples {e.sample_path})", "green")
        self.notify(e.checkpoint_path, title="Snapshot saved")

    def _on_Exported(self, e: ev.Exported) -> None:
        self.log_line(f"samples exported: {e.path}", "green")
        self.notify(e.path, title="Samples exported")

    def _on_LrPending(self, e: ev.LrPending) -> None:
        status = self.status_panel
        status.pending = (e.lr_g, e.lr_d)
        status.redraw()
        self.log_line(f"learning rates G {e.lr_g:g}, D {e.lr_d:g} will apply at the end of this epoch")

    def _on_LrApplied(self, e: ev.LrApplied) -> None:
        status = self.status_panel
        status.pending, status.lr_g, status.lr_d = None, e.lr_g, e.lr_d
        status.redraw()
        self.log_line(f"learning rates applied: G {e.lr_g:g}, D {e.lr_d:g}", "green")

    def _on_Paused(self, e: ev.Paused) -> None:
        if self.state in ("stopping…",):
            return
        detail = {"epoch end": "at the end of the epoch", "diverged": "diverged: lower the learning rates (l)"}
        self.set_state("paused", detail.get(e.reason, ""))
        self.log_line(f"paused at step {e.step}" + (f" ({e.reason})" if e.reason in detail else ""))

    def _on_Resumed(self, e: ev.Resumed) -> None:
        if self.state != "stopping…":
            self.set_state("training")
        self.log_line(f"resumed at step {e.step}")

    def _on_EngineWarning(self, e: ev.EngineWarning) -> None:
        self.log_line(f"warning: {e.message}", "yellow")
        self.notify(e.message, severity="warning")

    def _on_Finished(self, e: ev.Finished) -> None:
        reason = e.reason.replace("_", " ")
        self.set_state("finished", reason)
        saved = f"; checkpoint {e.checkpoint_path}" if e.checkpoint_path else ""
        self.log_line(f"finished ({reason}) at step {e.step}{saved}", "bold cyan")
        if self.finish_exits:
            self.set_timer(0.5, self.exit)

    def _on_Error(self, e: ev.Error) -> None:
        self.set_state("error", e.message)
        saved = f"checkpoint saved to {e.checkpoint_path}" if e.checkpoint_path else "no checkpoint could be saved"
        self.log_line(f"error: {e.message}; {saved}", "bold red")
        self.notify(f"{e.message}\n{saved}", title="Training failed", severity="error", timeout=30)

    # ----------------------------------------------------------------- helpers

    def set_state(self, state: str, detail: str = "") -> None:
        self.state = state
        status = self.status_panel
        status.state, status.detail = state, detail
        status.redraw()

    def log_line(self, text: str, style: str = "") -> None:
        from rich.text import Text

        self.event_log.write(Text(text, style=style))

    # ----------------------------------------------------------------- actions

    @property
    def _engine_live(self) -> bool:
        """The engine is training (or paused) and takes requests."""
        return self.control is not None and self.state in ("training", "pausing…", "paused")

    def action_toggle_pause(self) -> None:
        if not self._engine_live:
            self.bell()
            return
        if self.control.toggle_pause():
            self.set_state("pausing…")
        else:
            self.control.resume()
            self.set_state("training")

    def action_snapshot(self) -> None:
        if self._require_engine("snapshot"):
            self.control.snapshot()
            self.log_line("snapshot requested…", "dim")

    def action_export(self) -> None:
        if self._require_engine("export"):
            self.control.export()
            self.log_line("export requested…", "dim")

    def _require_engine(self, what: str) -> bool:
        if not self._engine_live:
            self.notify(f"cannot {what} now: training is {self.state.rstrip('…')}", severity="warning")
            return False
        return True

    def action_learning_rate(self) -> None:
        if not self._require_engine("change the learning rate"):
            return
        status = self.status_panel
        current = status.pending or (status.lr_g, status.lr_d)

        from .widgets.dialogs import LearningRateDialog

        def apply(result) -> None:
            if result is None or self.control is None:
                return
            self.control.set_lr(result.lr_g, result.lr_d, now=result.now)

        self.push_screen(LearningRateDialog(current[0], current[1]), apply)

    def action_toggle_auto_pause(self) -> None:
        status = self.status_panel
        status.auto_pause = not status.auto_pause
        if self.control is not None:
            self.control.pause_at_epoch_end = status.auto_pause
        status.redraw()
        self.log_line(f"pause at every epoch end: {'on' if status.auto_pause else 'off'}")

    def action_toggle_log_scale(self) -> None:
        chart = self.chart
        chart.set_log_scale(not chart.log_scale)

    def action_toggle_chart(self) -> None:
        chart = self.chart
        chart.set_show_quality(not chart.show_quality)
        chart.border_title = "Quality" if chart.show_quality else "Losses"

    def action_measure(self) -> None:
        if self._require_engine("measure the quality"):
            self.control.measure()
            self.log_line("quality measurement requested…", "dim")

    def _on_Quality(self, e: ev.Quality) -> None:
        self.chart.add_rows([{"step": e.step, "swd": e.swd, "diversity": e.diversity,
                              **{key: math.nan for key in ("loss_d", "loss_g")}}])
        self.log_line(f"quality at step {e.step}: SWD {e.swd:.1f}, diversity {e.diversity:.2f} "
                      f"({e.images} images, {e.seconds:.1f}s)")

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def action_help(self) -> None:
        from .widgets.dialogs import HelpScreen

        self.push_screen(HelpScreen([(key, description) for key, _, description in KEYS]))

    def action_quit_safely(self) -> None:
        self.stop_and_exit("quit")

    def stop_and_exit(self, reason: str) -> None:
        """Save last.pt (the engine does it as it stops), then exit."""
        if self.engine_done.is_set():
            self.exit(self.exit_code, return_code=self.exit_code)
            return
        if self._quitting and self.state == "stopping…":
            return
        self._quitting = self._quitting or reason
        self._stop_requested.set()
        self.set_state("stopping…", "saving checkpoints/last.pt")
        self.log_line("stopping: saving checkpoints/last.pt…", "yellow")
        if self.control is not None:
            self.control.stop(reason)

    def on_unmount(self) -> None:
        """However the app ends, the engine stops and saves (the CLI waits for it)."""
        for sig, handler in getattr(self, "_previous_handlers", {}).items():
            signal.signal(sig, handler)
        self._stop_requested.set()
        if self.control is not None:
            self.control.stop(self._quitting or "app closed")

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key, action, description in KEYS:
            if action == "help":
                continue
            name, _, arg = action.partition("(")
            args = [int(arg.rstrip(")"))] if arg else []
            yield SystemCommand(description, f"key: {key}", partial(getattr(self, f"action_{name}"), *args))
