"""The metric history: one named row per log interval or quality measurement.

The engine appends rows to it (and to metrics.csv), checkpoints keep it as a float64
tensor with its column names, and viewers draw it (core/metrics_csv.py reads metrics.csv
back). Standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

STATS = ("loss_d", "loss_g", "d_x", "d_g_z1", "d_g_z2")


class HistoryRow(NamedTuple):
    """Training statistics averaged over an interval (quality fields NaN), or one quality
    measurement (training statistics NaN, see ``quality``)."""

    step: int
    epoch: int
    loss_d: float
    loss_g: float
    d_x: float
    d_g_z1: float
    d_g_z2: float
    lr_g: float
    lr_d: float
    images_per_sec: float
    elapsed_s: float
    swd: float = math.nan
    diversity: float = math.nan

    @classmethod
    def quality(cls, step: int, epoch: int, lr_g: float, lr_d: float, elapsed_s: float, swd: float,
                diversity: float) -> HistoryRow:
        """A row for one quality measurement (see engine/quality.py)."""
        nan = math.nan
        return cls(step, epoch, nan, nan, nan, nan, nan, lr_g, lr_d, nan, elapsed_s, swd, diversity)

    @classmethod
    def from_values(cls, columns: Sequence[str], values: Sequence[float]) -> HistoryRow:
        """A row saved with ``columns`` (perhaps by an older version: missing ones are NaN)."""
        saved = dict(zip(columns, values))
        row: dict[str, float | int] = {name: saved.get(name, math.nan) for name in COLUMNS}
        row["step"], row["epoch"] = int(row["step"]), int(row["epoch"])
        return cls(**row)  # type: ignore[arg-type]  # step and epoch are ints, the rest floats

    @property
    def is_training(self) -> bool:
        """Whether the row holds training statistics (not a quality measurement)."""
        return math.isfinite(self.loss_d)


COLUMNS: tuple[str, ...] = HistoryRow._fields


def rows_from_table(columns: Sequence[str], values: Iterable[Sequence[float]]) -> list[HistoryRow]:
    return [HistoryRow.from_values(columns, row) for row in values]
