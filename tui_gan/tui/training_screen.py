"""The training screen: the layout, and the run's events drawn on it.

Each event is folded once into the screen's RunView (core/runview.py), the run's state as
far as this window has heard; the handler of its kind (``HANDLERS``) then redraws the
panels whose part of the view it changed, and the event's lines, in the words of
core/report.py (those of the headless log), go to the event log. What only this window
knows (a pause it asked for and the run has not yet confirmed, a lost connection) is its
RunState (state.py). The keys' actions belong to the screen's parts: the panels
(panels.py), the requests to the run (run_requests.py) and the comparison (comparison.py).

The connection (service/client.py's RemoteRun) keeps a view of its own, folded in the
worker thread as the events arrive, for its control's pause state; this one is folded in
the UI thread, which alone draws from it, so no panel reads a view another thread is
changing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult, SystemCommand
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, RichLog

from ..core import events as ev
from ..core.comparison import ComparedRun
from ..core.contract import RunControl
from ..core.errors import UserError
from ..core.report import Line, Report, Tone
from ..core.rundir import RunDir
from ..core.runview import RunView
from .comparison import Comparison, RunLister
from .keys import Scope, bindings, help_rows
from .panels import SAMPLES_TITLE, RunPanels
from .run_requests import RunRequests
from .screens.help import HelpScreen
from .screens.interpolation import InterpolationScreen
from .state import RunState
from .widgets.samples import SamplesView

#: The event log's style for each tone of a report line. STATUS lines (progress, loading)
#: never reach the log: the status panel shows that state, and the log would scroll with it.
TONE_STYLES = {Tone.PLAIN: "", Tone.GOOD: "green", Tone.WARNING: "yellow", Tone.ERROR: "bold red",
               Tone.DONE: "bold cyan", Tone.STATUS: "dim"}
PAUSE_DETAILS = {"epoch end": "at the end of the epoch", "diverged": "diverged: lower the learning rates (l)"}
BORDER_TITLES = {"chart": "Losses", "gauges": "Discriminator's verdicts", "samples": SAMPLES_TITLE,
                 "status": "Status", "log": "Events"}


class TrainingScreen(Screen[None]):
    BINDINGS = bindings(Scope.TRAINING)

    def __init__(self, run_name: str = "", compare: ComparedRun | None = None,
                 list_runs: RunLister | None = None) -> None:
        super().__init__()
        self.run_name = run_name
        self.view = RunView()
        self.state = RunState.LOADING
        self.control: RunControl | None = None  # set by attach() once the app has reached the run
        self.report = Report()
        self.panels = RunPanels(self.view, self)
        # min_width: RichLog renders at least 78 columns by default and crops the rest, which
        # cut off the lines of a 68-column (120x40) or 46-column (80x24) panel
        self.event_log = RichLog(id="log", markup=True, wrap=True, max_lines=1000, min_width=20)
        self.event_log.can_focus = False  # it would take space (pause) for scrolling; the mouse still scrolls it
        self.requests = RunRequests(self.view, self)
        self.comparison = Comparison(self.panels.chart, self.view, self, compare, list_runs)

    # ----------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        panels = self.panels
        yield Header(show_clock=False, icon="◐")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield panels.chart
                with Vertical(id="gauges"):
                    yield from panels.gauges.values()
                yield self.event_log
            with Vertical(id="right"):
                yield panels.samples_view
                yield panels.status
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.run_name or "loading…"
        for widget_id, title in BORDER_TITLES.items():
            self.query_one(f"#{widget_id}").border_title = title
        graphics = self.app.graphics
        self.panels.images_label = graphics.label
        self.panels.samples_view.border_title += graphics.label  # "Samples (fixed noise) · kitty"
        if graphics.reason:
            self.log_line(f"images: {graphics.reason}", "dim")
        self.log_line("loading torch and the data…", "dim")
        self.comparison.start()

    def on_samples_view_rows_shown(self, _: SamplesView.RowsShown) -> None:
        """A conditional run's classes on screen changed: the status panel names them."""
        self.panels.status.classes_shown = self.panels.samples_view.classes_shown
        self.panels.status.redraw()

    def on_screen_suspend(self) -> None:
        self.panels.samples_view.refresh()  # pixels only on the screen on top: half blocks under a dialog

    def on_screen_resume(self) -> None:
        self.panels.samples_view.refresh()

    # ----------------------------------------------------------------- what the App calls

    def attach(self, control: RunControl) -> None:
        """The app has reached the run: requests go to ``control`` from now on."""
        self.control = control
        self.requests.attach(control)

    @property
    def run_dir(self) -> str:
        return self.view.started.run_dir if self.view.started is not None else ""

    @classmethod
    def handles(cls, event_type: type) -> bool:
        return event_type in cls.HANDLERS

    def show_event(self, event: Any) -> None:
        self.view.apply(event)
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
        status = self.panels.status
        status.state, status.detail = state, detail
        status.redraw()

    def log_line(self, text: str, style: str = "") -> None:
        self.event_log.write(Text(text, style=style))

    def log_report_line(self, line: Line) -> None:
        self.log_line(line.text, TONE_STYLES[line.tone])

    # ----------------------------------------------------------------- one handler per event

    def _show_loading(self, e: ev.Loading) -> None:
        self.set_state(RunState.LOADING, Report.loading_detail(e))

    def _show_started(self, _: ev.Started | None = None) -> None:
        started = self.view.started
        assert started is not None
        self.sub_title = started.run_dir.rstrip("/").split("/")[-1]
        self.panels.draw_run()
        paused = self.control is not None and self.control.paused
        self.set_state(RunState.PAUSING if paused else RunState.TRAINING)

    def _show_progress(self, e: ev.Progress) -> None:
        if e.row is not None:
            self.panels.take_rows()
        self.panels.progress()

    def _show_quality(self, _: ev.Quality) -> None:
        self.panels.take_rows()

    def _show_samples(self, _: ev.Samples) -> None:
        self.panels.draw_samples()

    def _show_in_view(self, _: Any) -> None:
        """Kept by the view for later (an epoch's samples, for [ and ]): nothing to redraw."""

    def _show_in_status(self, _: Any) -> None:
        """Learning rates, auto-pause, the GPU: the status panel shows them."""
        self.panels.status.redraw()

    def _show_interpolation(self, e: ev.Interpolation) -> None:
        if isinstance(self.app.screen, InterpolationScreen):
            self.app.screen.dismiss(None)
        classes = [self.view.class_name(c) for c in e.classes] if e.classes else None
        self.app.push_screen(InterpolationScreen(e.frames, e.step, self.run_dir, self.log_line, classes))

    def _show_snapshot_saved(self, e: ev.SnapshotSaved) -> None:
        self.notify(e.checkpoint_path, title="Snapshot saved")

    def _show_exported(self, e: ev.Exported) -> None:
        self.notify(e.path, title="Samples exported")

    def _show_paused(self, e: ev.Paused) -> bool:
        """A pause still queued when q was pressed is no news: the run is stopping."""
        if self.state is RunState.STOPPING:
            return False
        self.set_state(RunState.PAUSED, PAUSE_DETAILS.get(e.reason, ""))
        return True

    def _show_resumed(self, _: ev.Resumed) -> None:
        if self.state is not RunState.STOPPING:
            self.set_state(RunState.TRAINING)

    def _show_warning(self, e: ev.EngineWarning) -> None:
        self.notify(e.message, severity="warning")

    def _show_finished(self, e: ev.Finished) -> None:
        self.set_state(RunState.FINISHED, e.reason.replace("_", " ") + (": final save failed" if e.save_failed else ""))
        if e.save_failed:
            self.notify(Report.unsaved(e).text, title="Final checkpoint not saved", severity="error", timeout=30)

    def _show_writes_failing(self, e: ev.WritesFailing) -> None:
        self.panels.status.redraw()
        self.notify(f"cannot write {e.path} ({e.reason}); training goes on", title="Disk", severity="warning",
                    timeout=15)

    def _show_writes_recovered(self, e: ev.WritesRecovered) -> None:
        self.panels.status.redraw()
        self.notify(f"{e.what} saved", title="Writing again")

    def _show_attached(self, _: ev.Attached) -> None:
        """A service's run so far: everything drawn from the view the snapshot made; the log
        gets the run's recent lines (the report's lines of this event)."""
        view = self.view
        if view.started is None:
            if view.loading is not None:
                self._show_loading(view.loading)
            return
        self._show_started()
        self.panels.progress()
        self.panels.draw_samples()
        if view.paused is not None:
            self._show_paused(ev.Paused(view.step, view.paused))

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
        ev.EpochEnd: _show_in_view,
        ev.SnapshotSaved: _show_snapshot_saved,
        ev.Exported: _show_exported,
        ev.LrPending: _show_in_status,
        ev.LrApplied: _show_in_status,
        ev.Paused: _show_paused,
        ev.Resumed: _show_resumed,
        ev.EngineWarning: _show_warning,
        ev.Finished: _show_finished,
        ev.Error: _show_error,
        ev.AutoPauseSet: _show_in_status,
        ev.Attached: _show_attached,
        ev.Disconnected: _show_disconnected,
        ev.DeviceStatus: _show_in_status,
        ev.NewestCheckpoint: _show_in_status,
        ev.WritesFailing: _show_writes_failing,
        ev.WritesRecovered: _show_writes_recovered,
    }

    # ----------------------------------------------------------------- the keys (keys.py), by part

    def action_toggle_pause(self) -> None:
        self.requests.toggle_pause()

    def action_snapshot(self) -> None:
        self.requests.snapshot()

    def action_export(self) -> None:
        self.requests.export()

    def action_learning_rate(self) -> None:
        self.requests.learning_rate()

    def action_toggle_auto_pause(self) -> None:
        self.requests.toggle_auto_pause()

    def action_toggle_average(self) -> None:
        self.requests.toggle_average()

    def action_show_classes(self, direction: int) -> None:
        self.requests.show_classes(direction, len(self.panels.samples_view.classes_shown))

    def class_commands(self) -> Iterator[SystemCommand]:
        """A conditional run's classes, for the command palette (the app lists them)."""
        return self.requests.class_commands()

    def action_interpolate(self) -> None:
        self.requests.interpolate()

    def action_measure(self) -> None:
        self.requests.measure()

    def action_toggle_log_scale(self) -> None:
        self.panels.toggle_log_scale()

    def action_toggle_chart(self) -> None:
        self.panels.toggle_chart()

    def action_browse(self, delta: int) -> None:
        if not self.panels.browse(delta):
            self.notify("no epoch has ended yet: the samples of each epoch's end are kept here", severity="warning")

    def action_compare(self) -> None:
        self.comparison.pick()

    def action_toggle_alignment(self) -> None:
        self.comparison.toggle_alignment()

    def action_gif(self) -> None:
        run_dir = self.run_dir
        if not run_dir:
            self.notify("no run directory yet", severity="warning")
            return
        self.log_line("writing the progression GIF…", "dim")
        self._write_gif(run_dir)

    @work(thread=True, exclusive=True, group="gif", exit_on_error=False)
    def _write_gif(self, run_dir: str) -> None:
        from ..pictures.progression import make_gif  # Pillow: loaded when first needed

        try:
            path = make_gif(run_dir)
            epochs = len(RunDir(run_dir).epoch_grids())
            self.app.call_from_thread(self.log_line, f"progression GIF ({epochs} epochs): {path}", "green")
        except UserError as exc:
            self.app.call_from_thread(self.log_line, f"no GIF: {exc}", "yellow")

    def action_toggle_theme(self) -> None:
        self.app.theme = "textual-light" if self.app.theme == "textual-dark" else "textual-dark"

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(help_rows()))
