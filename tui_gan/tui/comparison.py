"""Comparing runs on the training screen: another run's curves on the loss chart (given by
``--compare``, or picked with ``o`` from the runs beside this one), followed as that run
trains, and the x-axis by step or by images seen (``x``).

Everything that touches the disk runs in thread workers of the screen: listing the runs
(each one's metrics.csv is read, a couple of MB for a long run), opening the picked one,
and the look every COMPARE_REFRESH_S at whether it has grown (one stat when it has not;
only the appended lines when it has).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from textual.app import App
from textual.notifications import SeverityLevel
from textual.timer import Timer
from textual.worker import Worker

from ..core.comparison import ComparedRun, RunSummary, summarise_run
from ..core.errors import UserError
from ..core.metrics_csv import MetricsCsvError
from ..core.rundir import DEFAULT_RUNS, run_dirs
from ..core.runview import RunView
from .widgets.loss_chart import LossChart, ema
from .widgets.overlay import Overlay

#: Seconds between looks at whether the compared run's metrics.csv has grown (it gains a row
#: every couple of seconds while that run trains; the chart redraws every 5 s at most).
COMPARE_REFRESH_S = 5.0

RunLister = Callable[[Path], list[RunSummary]]


def files_only_listing(root: Path) -> list[RunSummary]:
    """The runs under ``root`` from their metrics.csv alone, their state unknown (for an app
    given no lister that knows their services)."""
    return [summarise_run(run, "") for run in run_dirs(root)]


class Host(Protocol):
    """What the comparison uses of the screen whose chart it draws on."""

    @property
    def app(self) -> App[Any]: ...
    def log_line(self, text: str, style: str = "") -> None: ...
    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None: ...
    def run_worker(self, work: Any, name: str | None = "", group: str = "default", description: str = "",
                   exit_on_error: bool = True, start: bool = True, exclusive: bool = False,
                   thread: bool = False) -> Worker[Any]: ...
    def set_interval(self, interval: float, callback: Any = None, *, name: str | None = None,
                     repeat: int = 0, pause: bool = False) -> Timer: ...


class Comparison:
    """The compared run, the picker (``o``) and the x-axis alignment (``x``). ``compared``:
    the run of ``--compare``, drawn with the first frame; ``list_runs``: how the picker lists
    runs (commands/runstate.run_summaries, which knows their states)."""

    def __init__(self, chart: LossChart, view: RunView, screen: Host, compared: ComparedRun | None = None,
                 list_runs: RunLister | None = None) -> None:
        self.chart, self.view, self.screen = chart, view, screen
        self.list_runs = list_runs or files_only_listing
        self.compared = compared
        if compared is not None:
            chart.overlay = overlay_of(compared)

    def start(self) -> None:
        """Once the screen is mounted: the chart's subtitle, and a look at the compared run's
        metrics.csv every COMPARE_REFRESH_S."""
        self._show_compared_name()
        self.screen.set_interval(COMPARE_REFRESH_S, self.look_again)

    @property
    def run_dir(self) -> str:
        return self.view.started.run_dir if self.view.started is not None else ""

    def _compare_with(self, compared: ComparedRun | None, overlay: Overlay | None) -> None:
        self.compared = compared
        self.chart.set_overlay(overlay)
        self._show_compared_name()

    def _show_compared_name(self) -> None:
        self.chart.border_subtitle = f"vs {self.compared.name}" if self.compared is not None else ""

    def _in_thread(self, work: Callable[[], None], group: str) -> None:
        self.screen.run_worker(work, group=group, exclusive=True, thread=True, exit_on_error=False)

    # ----------------------------------------------------------------- following it

    def look_again(self) -> None:
        if self.compared is not None:
            self._in_thread(partial(self._refresh_compared, self.compared), "compare-refresh")

    def _refresh_compared(self, compared: ComparedRun) -> None:
        try:
            grew = compared.refresh()
        except MetricsCsvError:
            return  # moved or deleted since: the curves stay as they were
        if grew:
            self.screen.app.call_from_thread(self._grown, compared, overlay_of(compared))

    def _grown(self, compared: ComparedRun, overlay: Overlay) -> None:
        if compared is self.compared:  # not replaced or cleared meanwhile
            self.chart.set_overlay(overlay, now=False)

    # ----------------------------------------------------------------- the keys

    def toggle_alignment(self) -> None:
        self.chart.set_alignment(self.chart.alignment.toggled())  # the axis label says which

    def pick(self) -> None:
        run_dir = self.run_dir
        folder = Path(run_dir).parent if run_dir else Path(DEFAULT_RUNS)
        own = Path(run_dir).resolve() if run_dir else None
        compared = self.compared.name if self.compared is not None else None
        from .screens.compare_picker import NO_COMPARISON, ComparePicker  # with the key: off the first frame's path

        def picked(choice: Path | str | None) -> None:
            if choice is None:
                return
            if choice == NO_COMPARISON:
                self._compare_with(None, None)
                self.screen.log_line("comparison cleared", "dim")
            else:
                self.screen.log_line(f"reading {choice}…", "dim")
                self._in_thread(partial(self._open_compared, str(choice)), "compare-open")

        self.screen.app.push_screen(ComparePicker(folder, own, compared, self.list_runs), picked)

    def _open_compared(self, path: str) -> None:
        app = self.screen.app
        try:
            compared = ComparedRun.open(path, flag="compare")
        except UserError as exc:
            app.call_from_thread(self.screen.notify, str(exc), severity="warning")
            return
        app.call_from_thread(self._compared_opened, compared, overlay_of(compared))

    def _compared_opened(self, compared: ComparedRun, overlay: Overlay) -> None:
        self._compare_with(compared, overlay)
        self.screen.log_line(f"comparing with {compared.run.root} (batch size {compared.batch_size})", "green")


def overlay_of(compared: ComparedRun) -> Overlay:
    """The compared run's curves, smoothed as the chart smooths (done in the caller's thread:
    a worker's, where the history can be long)."""
    overlay = Overlay(compared.name, compared.batch_size, compared.rows)
    overlay.smoothed(False, ema)
    return overlay
