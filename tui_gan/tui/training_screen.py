"""The training screen: the layout and the engine's events drawn on it (its keys' actions
are training_actions.py's).

The App (app.py) keeps the lifecycle: it runs the engine in a worker and hands each event
to ``show_event`` here, which finds the event's handler in ``HANDLERS`` and writes the
event's lines to the event log. Those lines come from core/report.py, so the app and the
headless log describe an event in the same words.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from operator import attrgetter
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, RichLog

from ..core import events as ev
from ..core.control import Control
from ..core.history import HistoryRow
from ..core.report import Line, Report, Tone
from .comparison import Comparing
from .keys import Scope, bindings
from .sample_history import SampleHistory, Shown
from .screens.interpolation import InterpolationScreen
from .state import RunState
from .training_actions import TrainingActions
from .widgets.gauges import Gauge
from .widgets.loss_chart import LossChart
from .widgets.samples import SamplesView
from .widgets.status import StatusPanel
from .widgets.throttle import Throttle

#: (name, label) of each gauge; the name is the field of Progress and HistoryRow it shows.
GAUGES = (("d_x", "D(x)"), ("d_g_z1", "D(G(z1))"), ("d_g_z2", "D(G(z2))"))
#: Seconds between redraws of the numbers (status, gauges). Every redraw holds the GIL that
#: the training thread needs between its operations; see docs/benchmark.md, "Speed of the app".
PROGRESS_REDRAW_S = 1.0
#: The event log's style for each tone of a report line. STATUS lines (progress, loading)
#: never reach the log: the status panel shows that state, and the log would scroll with it.
TONE_STYLES = {Tone.PLAIN: "", Tone.GOOD: "green", Tone.WARNING: "yellow", Tone.ERROR: "bold red",
               Tone.DONE: "bold cyan", Tone.STATUS: "dim"}
PAUSE_DETAILS = {"epoch end": "at the end of the epoch", "diverged": "diverged: lower the learning rates (l)"}
BORDER_TITLES = {"chart": "Losses", "gauges": "Discriminator's verdicts", "samples": "Samples (fixed noise)",
                 "status": "Status", "log": "Events"}


def _as_array(images: Any) -> Any:
    """Events carry torch tensors or numpy arrays; the widgets take numpy (no torch import)."""
    return images.numpy() if hasattr(images, "numpy") else images


class TrainingScreen(Comparing, TrainingActions, Screen[None]):
    BINDINGS = bindings(Scope.TRAINING)

    def __init__(self, run_name: str = "", screen_ab: Any = None) -> None:
        """``screen_ab`` (a bench ScreenAB) freezes the progress and samples in alternate
        stretches to measure what drawing them costs the training."""
        super().__init__()
        self.run_name = run_name
        self.screen_ab = screen_ab
        self.state = RunState.LOADING
        self.control: Control | None = None  # set by attach() once the engine exists
        self.report = Report()
        self.run_dir = ""
        self.samples = SampleHistory()
        self.has_average = False  # --ema: the run keeps a moving average of G
        self.shown_generator: str | None = None  # whose samples the newest Samples event had
        self._progress: ev.Progress | None = None  # the newest progress not yet drawn
        self._progress_redraws = Throttle(self, PROGRESS_REDRAW_S, self._draw_progress)
        # Built here and held: the handlers run several times a second and should not query
        # for their widgets, and every attribute exists before the screen is mounted.
        self.chart = LossChart(id="chart")
        self.gauges = {name: Gauge(label, id=f"gauge-{name}") for name, label in GAUGES}
        # min_width: RichLog renders at least 78 columns by default and crops the rest, which
        # cut off the lines of a 68-column (120x40) or 46-column (80x24) panel
        self.event_log = RichLog(id="log", markup=True, wrap=True, max_lines=1000, min_width=20)
        self.event_log.can_focus = False  # it would take space (pause) for scrolling; the mouse still scrolls it
        self.samples_view = SamplesView(id="samples")
        self.status_panel = StatusPanel(id="status")

    # ----------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="◐")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield self.chart
                with Vertical(id="gauges"):
                    yield from self.gauges.values()
                yield self.event_log
            with Vertical(id="right"):
                yield self.samples_view
                yield self.status_panel
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.run_name or "loading…"
        for widget_id, title in BORDER_TITLES.items():
            self.query_one(f"#{widget_id}").border_title = title
        graphics = self.app.graphics
        self.samples_view.border_title += graphics.label  # "Samples (fixed noise) · kitty"
        if graphics.reason:
            self.log_line(f"images: {graphics.reason}", "dim")
        self.log_line("loading torch and the data…", "dim")
        self.on_mount_comparing()

    def on_screen_suspend(self) -> None:
        self.samples_view.refresh()  # pixels only on the screen on top: half blocks under a dialog

    def on_screen_resume(self) -> None:
        self.samples_view.refresh()

    # ----------------------------------------------------------------- what the App calls

    def attach(self, control: Control) -> None:
        """The engine exists: requests go to ``control`` from now on."""
        self.control = control

    @classmethod
    def handles(cls, event_type: type) -> bool:
        return event_type in cls.HANDLERS

    def show_event(self, event: Any) -> None:
        handler = self.HANDLERS.get(type(event))
        if handler is None:
            return  # an event of a newer engine: nothing here knows how to show it
        if isinstance(event, (ev.Progress, ev.Loading)):
            self.report.observe(event)  # their lines are STATUS lines: the status panel shows them
            handler(self, event)
        elif handler(self, event) is not False:  # False: the handler found it no news
            for line in self.report.lines(event):
                self.log_report_line(line)

    def set_state(self, state: RunState, detail: str = "") -> None:
        self.state = state
        status = self.status_panel
        status.state, status.detail = state, detail
        status.redraw()

    def log_line(self, text: str, style: str = "") -> None:
        self.event_log.write(Text(text, style=style))

    def log_report_line(self, line: Line) -> None:
        self.log_line(line.text, TONE_STYLES[line.tone])

    # ----------------------------------------------------------------- one handler per event

    def _show_loading(self, e: ev.Loading) -> None:
        self.set_state(RunState.LOADING, Report.loading_detail(e))

    def _show_started(self, e: ev.Started) -> None:
        if self.screen_ab is not None:
            self.screen_ab.start()
        self.status_panel.show_started(e)
        self.run_dir = e.run_dir
        self.samples.epochs = list(e.progression)  # a resumed run's earlier epochs
        self.has_average = bool(e.config.get("ema"))
        self.chart.batch_size = e.config.get("batch_size")  # for the x-axis by images seen
        self.sub_title = e.run_dir.rstrip("/").split("/")[-1]
        if e.history:
            self.chart.add_rows(e.history)
            for name, gauge in self.gauges.items():
                gauge.extend_history([v for v in map(attrgetter(name), e.history) if math.isfinite(v)])
        paused = self.control is not None and self.control.paused
        self.set_state(RunState.PAUSING if paused else RunState.TRAINING)

    def _show_progress(self, e: ev.Progress) -> None:
        """Rows go to the chart at once (every one counts); the numbers are redrawn at most
        every PROGRESS_REDRAW_S, showing the newest."""
        if self.screen_ab is not None:
            self.screen_ab.record(e.step)
            if not self.screen_ab.updating():
                return
        if e.row is not None:
            self.chart.add_rows([e.row])
        self._progress = e
        self._progress_redraws.request()

    def _draw_progress(self) -> None:
        e, self._progress = self._progress, None
        if e is None or not self.is_attached:
            return
        for name, gauge in self.gauges.items():
            gauge.update_value(attrgetter(name)(e))
        self.status_panel.show_progress(e)

    def _show_samples(self, e: ev.Samples) -> None:
        if e.generator != self.shown_generator:  # the title changes with it (and is set at the first)
            self.shown_generator = e.generator
            # short enough for the 30 columns the panel has at 80x24
            whose = {"average": "EMA of G", "live": "live G"}.get(e.generator) if self.has_average else None
            title = f"Samples ({whose})" if whose else BORDER_TITLES["samples"]
            self.samples_view.border_title = title + self.app.graphics.label
        if self.screen_ab is not None and not self.screen_ab.updating():
            return
        self._draw_samples(self.samples.set_live(e.step, _as_array(e.images)))

    def _draw_samples(self, shown: Shown | None) -> None:
        if shown is not None:
            self.samples_view.set_images(shown.images)
            self.samples_view.border_subtitle = shown.subtitle

    def _show_epoch_end(self, e: ev.EpochEnd) -> None:
        if e.images is not None:
            self.samples.epochs.append((e.epoch, _as_array(e.images)))

    def _show_quality(self, e: ev.Quality) -> None:
        nan = math.nan  # the chart reads the step and the measurement only
        self.chart.add_rows([HistoryRow.quality(e.step, e.epoch, nan, nan, nan, e.swd, e.diversity)])

    def _show_interpolation(self, e: ev.Interpolation) -> None:
        if isinstance(self.app.screen, InterpolationScreen):
            self.app.screen.dismiss(None)
        self.app.push_screen(InterpolationScreen(_as_array(e.frames), e.step, self.run_dir, self.log_line))

    def _show_snapshot_saved(self, e: ev.SnapshotSaved) -> None:
        self.notify(e.checkpoint_path, title="Snapshot saved")

    def _show_exported(self, e: ev.Exported) -> None:
        self.notify(e.path, title="Samples exported")

    def _show_lr_pending(self, e: ev.LrPending) -> None:
        self.status_panel.pending = (e.lr_g, e.lr_d)
        self.status_panel.redraw()

    def _show_lr_applied(self, e: ev.LrApplied) -> None:
        status = self.status_panel
        status.pending, status.lr_g, status.lr_d = None, e.lr_g, e.lr_d
        status.redraw()

    def _show_paused(self, e: ev.Paused) -> bool:
        """A pause still queued when q was pressed is no news: the run is stopping."""
        if self.state is RunState.STOPPING:
            return False
        self.set_state(RunState.PAUSED, PAUSE_DETAILS.get(e.reason, ""))
        return True

    def _show_resumed(self, e: ev.Resumed) -> None:
        if self.state is not RunState.STOPPING:
            self.set_state(RunState.TRAINING)

    def _show_warning(self, e: ev.EngineWarning) -> None:
        self.notify(e.message, severity="warning")

    def _show_finished(self, e: ev.Finished) -> None:
        self.set_state(RunState.FINISHED, e.reason.replace("_", " "))

    def _show_auto_pause(self, e: ev.AutoPauseSet) -> None:
        self.status_panel.auto_pause = e.on
        self.status_panel.redraw()

    def _show_attached(self, e: ev.Attached) -> None:
        """A service's run so far, shown as the events that made it would have shown it;
        the log gets the run's recent lines (the report's lines of this event) instead of
        theirs."""
        if e.started is None:
            if e.loading is not None:
                self._show_loading(e.loading)
            return
        self._show_started(e.started)
        for part in (e.progress, e.samples, e.lr_pending, e.device_status):
            if part is not None:
                self.HANDLERS[type(part)](self, part)
        self._show_auto_pause(ev.AutoPauseSet(e.auto_pause))
        if e.paused is not None:
            self._show_paused(ev.Paused(e.progress.step if e.progress else e.started.step, e.paused))

    def _show_device_status(self, e: ev.DeviceStatus) -> None:
        self.status_panel.show_device(e)

    def _show_disconnected(self, e: ev.Disconnected) -> None:
        self.set_state(RunState.DISCONNECTED, "the training goes on" if e.service_running else "service gone")
        self.notify(e.message, title="Disconnected", severity="warning" if e.service_running else "error",
                    timeout=30)

    def _show_error(self, e: ev.Error) -> None:
        self.set_state(RunState.ERROR, e.message)
        self.notify(f"{e.message}\n{Report.saved_note(e)}", title="Training failed", severity="error", timeout=30)

    #: One handler per event class. A handler that returns False keeps the event's report
    #: lines out of the event log.
    HANDLERS: ClassVar[dict[type, Callable[[TrainingScreen, Any], bool | None]]] = {
        ev.Loading: _show_loading,
        ev.Started: _show_started,
        ev.Progress: _show_progress,
        ev.Quality: _show_quality,
        ev.Interpolation: _show_interpolation,
        ev.Samples: _show_samples,
        ev.EpochEnd: _show_epoch_end,
        ev.SnapshotSaved: _show_snapshot_saved,
        ev.Exported: _show_exported,
        ev.LrPending: _show_lr_pending,
        ev.LrApplied: _show_lr_applied,
        ev.Paused: _show_paused,
        ev.Resumed: _show_resumed,
        ev.EngineWarning: _show_warning,
        ev.Finished: _show_finished,
        ev.Error: _show_error,
        ev.AutoPauseSet: _show_auto_pause,
        ev.Attached: _show_attached,
        ev.Disconnected: _show_disconnected,
        ev.DeviceStatus: _show_device_status,
    }
