"""Comparing runs on the training screen: another run's curves on the loss chart (given by
``--compare``, or picked with ``o`` from the runs beside this one), followed as that run
trains, and the x-axis by step or by images seen (``x``).

A mixin of TrainingScreen (training_screen.py), which has the ``chart``, ``run_dir`` and
``log_line`` these methods use. Everything that touches the disk runs in thread workers:
listing the runs (each one's metrics.csv is read, a couple of MB for a long run), opening
the picked one, and the look every COMPARE_REFRESH_S at whether it has grown (one stat
when it has not; only the appended lines when it has).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual import work

from ..core.comparison import ComparedRun, RunSummary, summarise_run
from ..core.errors import UserError
from ..core.metrics_csv import MetricsCsvError
from ..core.rundir import DEFAULT_RUNS, run_dirs
from .widgets.loss_chart import ema
from .widgets.overlay import Overlay

#: Seconds between looks at whether the compared run's metrics.csv has grown (it gains a row
#: every couple of seconds while that run trains; the chart redraws every 5 s at most).
COMPARE_REFRESH_S = 5.0

RunLister = Callable[[Path], list[RunSummary]]


def files_only_listing(root: Path) -> list[RunSummary]:
    """The runs under ``root`` from their metrics.csv alone, their state unknown: for an app
    started without runs.run_summaries (an engine in the app's own process: tests, benchmarks)."""
    return [summarise_run(run, "") for run in run_dirs(root)]


class Comparing:
    """The compared run, the picker (``o``) and the x-axis alignment (``x``)."""

    chart: Any
    run_dir: str
    compared: ComparedRun | None = None
    list_runs: RunLister = staticmethod(files_only_listing)

    def compare_from_the_start(self, compared: ComparedRun | None, list_runs: RunLister | None) -> None:
        """Before the screen is mounted: the run of ``--compare`` and how the picker lists runs
        (runs.run_summaries, which knows their states)."""
        if list_runs is not None:
            self.list_runs = list_runs
        if compared is not None:
            self.compared = compared
            self.chart.overlay = overlay_of(compared)  # drawn with the first frame

    def on_mount_comparing(self) -> None:
        """On mount: the chart's subtitle, and a look at the compared run's metrics.csv every
        COMPARE_REFRESH_S."""
        self._show_compared_name()
        self.set_interval(COMPARE_REFRESH_S, self._look_again)

    def _compare_with(self, compared: ComparedRun | None, overlay: Overlay | None) -> None:
        self.compared = compared
        self.chart.set_overlay(overlay)
        self._show_compared_name()

    def _show_compared_name(self) -> None:
        self.chart.border_subtitle = f"vs {self.compared.name}" if self.compared is not None else ""

    # ----------------------------------------------------------------- following it

    def _look_again(self) -> None:
        if self.compared is not None:
            self._refresh_compared(self.compared)

    @work(thread=True, exclusive=True, group="compare-refresh", exit_on_error=False)
    def _refresh_compared(self, compared: ComparedRun) -> None:
        try:
            grew = compared.refresh()
        except MetricsCsvError:
            return  # moved or deleted since: the curves stay as they were
        if grew:
            self.app.call_from_thread(self._grown, compared, overlay_of(compared))

    def _grown(self, compared: ComparedRun, overlay: Overlay) -> None:
        if compared is self.compared:  # not replaced or cleared meanwhile
            self.chart.set_overlay(overlay, now=False)

    # ----------------------------------------------------------------- the keys

    def action_toggle_alignment(self) -> None:
        chart = self.chart
        chart.set_alignment(chart.alignment.toggled())  # the axis label says which

    def action_compare(self) -> None:
        folder = Path(self.run_dir).parent if self.run_dir else Path(DEFAULT_RUNS)
        own = Path(self.run_dir).resolve() if self.run_dir else None
        compared = self.compared.name if self.compared is not None else None
        from .screens.compare_picker import NO_COMPARISON, ComparePicker  # with the key: off the first frame's path

        def picked(choice: Path | str | None) -> None:
            if choice is None:
                return
            if choice == NO_COMPARISON:
                self._compare_with(None, None)
                self.log_line("comparison cleared", "dim")
            else:
                self.log_line(f"reading {choice}…", "dim")
                self._open_compared(str(choice))

        self.app.push_screen(ComparePicker(folder, own, compared, self.list_runs), picked)

    @work(thread=True, exclusive=True, group="compare-open", exit_on_error=False)
    def _open_compared(self, path: str) -> None:
        try:
            compared = ComparedRun.open(path, flag="compare")
        except UserError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="warning")
            return
        self.app.call_from_thread(self._compared_opened, compared, overlay_of(compared))

    def _compared_opened(self, compared: ComparedRun, overlay: Overlay) -> None:
        self._compare_with(compared, overlay)
        self.log_line(f"comparing with {compared.run.root} (batch size {compared.batch_size})", "green")


def overlay_of(compared: ComparedRun) -> Overlay:
    """The compared run's curves, smoothed as the chart smooths (done in the caller's thread:
    a worker's, where the history can be long)."""
    overlay = Overlay(compared.name, compared.batch_size, compared.rows)
    overlay.smoothed(False, ema)
    return overlay
