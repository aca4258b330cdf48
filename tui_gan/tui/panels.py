"""The panels that show the run: the loss chart, the discriminator's gauges, the samples and
the status. Each is redrawn from the run's view (core/runview.py) when an event changed what
it shows; none keeps a copy of the run's state.

Progress comes several times a second and every redraw holds the GIL and a CPU that
training needs (see docs/benchmark.md, "Speed of the app"): the numbers are redrawn at most
every PROGRESS_REDRAW_S, showing the newest; the chart times its own redraws.
"""

from __future__ import annotations

import math
from operator import attrgetter
from typing import Protocol

from textual.timer import Timer

from ..core import events as ev
from ..core.runview import RunView
from .sample_history import SampleHistory, Shown
from .widgets.gauges import Gauge
from .widgets.loss_chart import LossChart
from .widgets.samples import SamplesView
from .widgets.status import StatusPanel
from .widgets.throttle import Throttle

#: (name, label) of each gauge; the name is the field of Progress and HistoryRow it shows.
GAUGES = (("d_x", "D(x)"), ("d_g_z1", "D(G(z1))"), ("d_g_z2", "D(G(z2))"))
#: Seconds between redraws of the numbers (status, gauges).
PROGRESS_REDRAW_S = 1.0
SAMPLES_TITLE = "Samples (fixed noise)"
#: Whose samples the title names on a run with an average of G (--ema); short enough for
#: the 30 columns the panel has at 80x24.
GENERATORS = {"average": "EMA of G", "live": "live G"}


class Timers(Protocol):
    """What schedules the delayed redraws: the screen the panels are on."""

    def set_timer(self, delay: float, callback: object = None, *, name: str | None = None,
                  pause: bool = False) -> Timer: ...


class RunPanels:
    def __init__(self, view: RunView, timers: Timers) -> None:
        self.view = view
        # Built here and held: every event redraws some of them, without a query.
        self.chart = LossChart(id="chart")
        self.gauges = {name: Gauge(label, id=f"gauge-{name}") for name, label in GAUGES}
        self.samples_view = SamplesView(id="samples")
        self.status = StatusPanel(view, id="status")
        self.samples = SampleHistory(view)
        self.images_label = ""
        """How images are drawn, for the samples' title ("· kitty"; "" for half blocks)."""
        self._titled: str | None = None  # whose samples the title names
        self._drawn: ev.Progress | None = None
        self._progress_redraws = Throttle(timers, PROGRESS_REDRAW_S, self._draw_progress)

    @property
    def has_average(self) -> bool:
        """--ema: the run keeps a moving average of G."""
        return bool(self.view.started and self.view.started.config.get("ema"))

    def draw_run(self) -> None:
        """The run as it started (or as a service's snapshot has it so far): once."""
        started = self.view.started
        assert started is not None
        self.chart.batch_size = started.config.get("batch_size")  # for the x-axis by images seen
        self.take_rows()
        for name, gauge in self.gauges.items():
            gauge.extend_history([v for v in map(attrgetter(name), started.history) if math.isfinite(v)])
        self.status.redraw()

    def take_rows(self) -> None:
        """New rows of the history (every one counts) go to the chart at once."""
        self.chart.take_rows(self.view.history)

    def progress(self) -> None:
        self._progress_redraws.request()

    def _draw_progress(self) -> None:
        e = self.view.progress
        if e is None or e is self._drawn or not self.status.is_attached:
            return
        self._drawn = e
        for name, gauge in self.gauges.items():
            gauge.update_value(attrgetter(name)(e))
        self.status.show_progress(e)

    def draw_samples(self) -> None:
        latest = self.view.samples
        if latest is None:
            return
        if latest.generator != self._titled:  # the title changes with it (and is set at the first)
            self._titled = latest.generator
            whose = GENERATORS.get(latest.generator) if self.has_average else None
            self.samples_view.border_title = (f"Samples ({whose})" if whose else SAMPLES_TITLE) + self.images_label
        self.show(self.samples.latest())

    def show(self, shown: Shown | None) -> None:
        if shown is not None:
            self.samples_view.set_images(shown.images, rows=shown.rows)
            self.samples_view.border_subtitle = shown.subtitle

    # ----------------------------------------------------------------- keys

    def toggle_log_scale(self) -> None:
        self.chart.set_log_scale(not self.chart.log_scale)

    def toggle_chart(self) -> None:
        chart = self.chart
        chart.set_show_quality(not chart.show_quality)
        chart.border_title = "Quality" if chart.show_quality else "Losses"

    def browse(self, delta: int) -> bool:
        """Step through the epoch-end samples; False when no epoch has ended yet."""
        if not self.view.progression:
            return False
        self.show(self.samples.browse(delta))
        return True
