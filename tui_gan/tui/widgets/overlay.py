"""Another run's curves on the loss chart (``--compare``, or the run picker), and the chart's
x-axis: by step, or by images seen (step × batch size), which lines up runs of different
batch sizes: two runs have learned from as many images at the same x.

The other run's smoothed losses are computed once per change of its history (its
metrics.csv grows every couple of seconds while it trains, and is re-read at most every
few seconds), not at every redraw; drawing then only downsamples them, as the chart does
its own lines.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence

from ...core.history import HistoryRow


class Alignment(enum.Enum):
    """What the chart's x-axis counts."""

    STEP = "step"
    IMAGES = "images seen"

    def toggled(self) -> Alignment:
        return Alignment.IMAGES if self is Alignment.STEP else Alignment.STEP


def aligned(steps: Sequence[float], batch_size: int | None, alignment: Alignment) -> list[float]:
    """The x of each step: the step itself, or the images seen by then (step × batch size;
    a run whose batch size is unknown keeps its steps)."""
    if alignment is Alignment.STEP or not batch_size:
        return list(steps)
    return [step * batch_size for step in steps]


def images_unit(largest: float) -> tuple[float, str]:
    """(divisor, axis label) that keeps image counts short on the axis: 12k, not 12000.0."""
    for divisor, suffix in ((1e6, "M"), (1e3, "k")):
        if largest >= 10 * divisor:
            return divisor, f"images seen ({suffix})"
    return 1.0, "images seen"


def short_name(name: str, width: int) -> str:
    """A run's name for the legend, cut from the left (runs/<timestamp> names differ at the end)."""
    return name if len(name) <= width else "…" + name[-(width - 1):]


def log10_or_nan(values: Sequence[float]) -> list[float]:
    """log10 of each value; non-positive ones become NaN (gaps on a log axis)."""
    return [math.log10(v) if v > 0 else math.nan for v in values]


class Overlay:
    """The other run's history as the chart draws it: its loss rows and quality rows apart,
    the losses smoothed with the chart's EMA (once per log-scale setting, cached)."""

    def __init__(self, name: str, batch_size: int, rows: Sequence[HistoryRow]) -> None:
        self.name = name
        self.batch_size = batch_size
        training = [row for row in rows if row.is_training]
        measured = [row for row in rows if math.isfinite(row.swd)]
        self.steps = [row.step for row in training]
        self.losses = {"loss_d": [row.loss_d for row in training], "loss_g": [row.loss_g for row in training]}
        self.quality_steps = [row.step for row in measured]
        self.swd = [row.swd for row in measured]
        self._smoothed: dict[bool, dict[str, list[float]]] = {}

    def smoothed(self, log_scale: bool, smooth) -> dict[str, list[float]]:
        """Each loss smoothed by ``smooth`` (the chart's EMA), as log10 on a log scale."""
        if log_scale not in self._smoothed:
            self._smoothed[log_scale] = {key: smooth(log10_or_nan(values) if log_scale else values)
                                         for key, values in self.losses.items()}
        return self._smoothed[log_scale]
