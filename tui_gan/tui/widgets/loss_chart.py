"""The loss chart: loss_D and loss_G against step, smoothed (EMA) over the faint raw values;
or, toggled, the quality measurements: SWD (left axis) and diversity (right axis). Another
run's smoothed losses and SWD may be drawn behind them (overlay.py), and the x-axis may
count images seen instead of steps.

The whole history is kept; drawing downsamples it to about two points per column for the
smoothed lines and one for the faint raw values. New rows are drawn at most every
``redraw_interval`` seconds, and less often where drawing is slow: one plotext build of this
chart takes 20-60 ms of the GIL on a 2-core CPU, time the training thread waits. The chart
times its own builds and keeps them under CPU_SHARE of one core.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence

from textual_plotext import PlotextPlot

from ...core.history import HistoryRow
from .overlay import Alignment, Overlay, aligned, images_unit, log10_or_nan, short_name
from .throttle import Throttle

EMA_ALPHA = 0.1
SERIES = (("loss_D", "loss_d", (255, 110, 90)), ("loss_G", "loss_g", (90, 200, 255)))
FAINT = (110, 110, 110)
QUALITY_COLOURS = ((255, 200, 80), (150, 230, 120))
#: The compared run's lines: hues of their own, darker than this run's, so that they read
#: as the background they are.
OVERLAY_COLOURS = {"loss_d": (175, 120, 60), "loss_g": (120, 115, 200), "swd": (175, 105, 185)}
#: The longest run name a legend entry shows (cut from the left: runs/<timestamp> names
#: differ at the end).
LEGEND_NAME = 14
#: Charts shorter than this (80x24) name the other run in the title, not in two legend rows.
LEGEND_MIN_HEIGHT = 16
#: The most of one core the chart's builds may take: the redraw interval grows to keep to it.
CPU_SHARE = 0.004


def ema(values: list[float], alpha: float = EMA_ALPHA) -> list[float]:
    out, acc = [], None
    for v in values:
        if not math.isfinite(v):
            out.append(acc if acc is not None else v)
            continue
        acc = v if acc is None else acc + alpha * (v - acc)
        out.append(acc)
    return out


def downsample(xs: list[float], ys: list[float], points: int) -> tuple[list[float], list[float]]:
    """Bucket means, so a long history still fits the plot's width."""
    n = len(xs)
    if n <= points or points <= 0:
        return xs, ys
    out_x, out_y = [], []
    for b in range(points):
        lo, hi = b * n // points, (b + 1) * n // points
        if hi <= lo:
            continue
        out_x.append(xs[hi - 1])
        chunk = [v for v in ys[lo:hi] if math.isfinite(v)]
        out_y.append(sum(chunk) / len(chunk) if chunk else math.nan)
    return out_x, out_y


def plot_finite(plt, xs: list[float], ys: list[float], **style) -> None:
    """``plt.plot`` for a series that may hold no finite value at all (another run's file
    without losses, a log scale of values <= 0): plotext fails to build a labelled series of
    NaN only, so such a series is left out."""
    if any(math.isfinite(v) for v in ys):
        plt.plot(xs, ys, **style)


class LossChart(PlotextPlot):
    def __init__(self, redraw_interval: float = 5.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.steps: list[float] = []
        self.values: dict[str, list[float]] = {key: [] for _, key, _ in SERIES}
        self.log_scale = False
        self.show_quality = False
        self.quality_steps: list[float] = []
        self.quality: dict[str, list[float]] = {"swd": [], "diversity": []}
        self.batch_size: int | None = None  # this run's (its Started event's): for the x-axis by images seen
        self.alignment = Alignment.STEP
        self.overlay: Overlay | None = None  # another run's curves (--compare)
        self.rows_taken = 0  # of the run's history (take_rows)
        self.redraw_interval = redraw_interval
        self._redraws = Throttle(self, redraw_interval, lambda: self.replot())  # late-bound

    def render(self):
        started = time.perf_counter()
        try:
            return super().render()
        finally:
            self.note_build_time(time.perf_counter() - started)

    def note_build_time(self, seconds: float) -> None:
        """Space the redraws so that builds of ``seconds`` stay within CPU_SHARE."""
        self._redraws.interval = max(self.redraw_interval, seconds / CPU_SHARE)

    def add_rows(self, rows: Iterable[HistoryRow]) -> None:
        """Append history rows; they are drawn within ``redraw_interval`` seconds. A row holds
        training statistics or a quality measurement (see core/history.py)."""
        for row in rows:
            if math.isfinite(row.swd):
                self.quality_steps.append(row.step)
                self.quality["swd"].append(row.swd)
                self.quality["diversity"].append(row.diversity)
            if math.isfinite(row.loss_d) or math.isfinite(row.loss_g):
                self.steps.append(row.step)
                self.values["loss_d"].append(row.loss_d)
                self.values["loss_g"].append(row.loss_g)
        self._redraws.request()

    def take_rows(self, history: Sequence[HistoryRow]) -> None:
        """Add the rows of the run's history (it only grows) past those taken before."""
        if len(history) > self.rows_taken:
            self.add_rows(history[self.rows_taken:])
            self.rows_taken = len(history)

    def set_show_quality(self, on: bool) -> None:
        self.show_quality = on
        self.replot()

    def set_log_scale(self, on: bool) -> None:
        self.log_scale = on
        self.replot()

    def set_alignment(self, alignment: Alignment) -> None:
        self.alignment = alignment
        self.replot()

    def set_overlay(self, overlay: Overlay | None, now: bool = True) -> None:
        """Draw ``overlay`` behind this run's curves (None: no more): at once, or (``now``
        False: a compared run that grew) within the redraw interval, as new rows are."""
        self.overlay = overlay
        if now:
            self.replot()
        else:
            self._redraws.request()

    def _series(self, key: str) -> list[float]:
        """The raw values of one loss, as log10 in log-scale mode (non-positive values dropped)."""
        raw = self.values[key]
        return log10_or_nan(raw) if self.log_scale else raw

    def _x_axis(self, steps: list[float], other_steps: list[float]) -> tuple[list[float], list[float], str]:
        """The x values of this run's and the overlay's steps, and the axis label."""
        overlay_batch = self.overlay.batch_size if self.overlay is not None else None
        xs = aligned(steps, self.batch_size, self.alignment)
        other = aligned(other_steps, overlay_batch, self.alignment)
        if self.alignment is Alignment.STEP:
            return xs, other, "step"
        divisor, label = images_unit(max(xs + other, default=0.0))
        return [x / divisor for x in xs], [x / divisor for x in other], label

    def replot(self) -> None:
        if self.steps:  # so the first rows (say, a resumed run's history) are drawn at once
            self._redraws.last = time.monotonic()
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if self.show_quality:
            self._plot_quality(plt)
            self.refresh()
            return
        plt.title("losses (log scale)" if self.log_scale else "losses")
        points = max(10, self.size.width * 2 if self.size.width else 200)
        overlay = self.overlay
        xs, other_xs, label = self._x_axis(self.steps, overlay.steps if overlay is not None else [])
        plt.xlabel(label)
        drawn: list[float] = []
        series = {key: self._series(key) for _, key, _ in SERIES} if self.steps else {}
        for key, values in series.items():  # raw values first, faint, behind everything
            plt.plot(*downsample(xs, values, points // 2), color=FAINT, marker="braille")
        if overlay is not None and overlay.steps:  # then the other run's: behind this run's lines
            name = short_name(overlay.name, LEGEND_NAME)
            smoothed = overlay.smoothed(self.log_scale, ema)
            short = self.size.height < LEGEND_MIN_HEIGHT  # four legend rows would hide the curves
            if short:
                plt.title(f"{'log losses' if self.log_scale else 'losses'} · dim: {name}")
            for label, key, _ in SERIES:
                plot_finite(plt, *downsample(other_xs, smoothed[key], points), color=OVERLAY_COLOURS[key],
                            marker="braille", label=None if short else f"{label} {name}")
                drawn += smoothed[key]
        for label, key, colour in SERIES if series else ():
            plt.plot(*downsample(xs, ema(series[key]), points), color=colour, marker="braille", label=label)
            drawn += series[key]
        if self.log_scale:
            self._log_ticks(plt, [v for v in drawn if math.isfinite(v)])
        self.refresh()

    def _plot_quality(self, plt) -> None:
        wide = self.size.width >= 72
        plt.title("quality: SWD (lower is better) · diversity (about 1 is healthy)" if wide
                  else "SWD (lower: better) · diversity")
        overlay = self.overlay if self.overlay is not None and self.overlay.quality_steps else None
        xs, other_xs, label = self._x_axis(self.quality_steps, overlay.quality_steps if overlay is not None else [])
        plt.xlabel(label)
        marker = "braille"
        if overlay is not None:
            plot_finite(plt, other_xs, overlay.swd, color=OVERLAY_COLOURS["swd"], marker=marker,
                        label=f"SWD {short_name(overlay.name, LEGEND_NAME)}")
        if not self.quality_steps:
            plt.title("quality: measured at every epoch's end (m: now)")
            return
        plt.plot(xs, self.quality["swd"], color=QUALITY_COLOURS[0], marker=marker, label="SWD")
        plt.plot(xs, self.quality["diversity"], color=QUALITY_COLOURS[1], marker=marker,
                 label="diversity", yside="right")

    @staticmethod
    def _log_ticks(plt, values: list[float]) -> None:
        """Label a log10 axis with the values themselves (0.1, 1, 10 ...)."""
        if not values:
            return
        lo, hi = math.floor(min(values)), math.ceil(max(values))
        ticks = list(range(lo, hi + 1))
        if len(ticks) < 3:  # add 2x and 5x marks inside a single decade
            ticks = sorted({t + math.log10(m) for t in range(lo, hi + 1) for m in (1, 2, 5)})
        plt.yticks(ticks, [f"{10 ** t:g}" for t in ticks])

    def on_resize(self) -> None:
        self.replot()
