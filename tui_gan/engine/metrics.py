"""Metric rows from progress-interval averages, metrics.csv, and throughput.

Per-step statistics are summed on the device (meter.py); this module only sees the
averages read back once per progress interval, so nothing here forces a device sync.
The rows themselves are core/history.py's HistoryRow.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ..core.history import COLUMNS, STATS, HistoryRow


class RowAggregator:
    """Combines progress-interval averages into one history row every ``interval`` seconds."""

    def __init__(self, interval: float):
        self.interval = interval
        self._sums = [0.0] * len(STATS)
        self._steps = 0
        self._images = 0
        self._seconds = 0.0
        self._since = 0.0

    def add(self, means: list[float], steps: int, images: int, seconds: float) -> None:
        """``means`` of STATS over ``steps`` steps of ``images`` images in ``seconds``."""
        for i, v in enumerate(means):
            self._sums[i] += v * steps
        self._steps += steps
        self._images += images
        self._seconds += seconds
        self._since += seconds

    def pending(self) -> bool:
        return self._steps > 0

    def due(self) -> bool:
        return self._steps > 0 and self._since >= self.interval

    def take(self, step: int, epoch: int, lr_g: float, lr_d: float, elapsed: float) -> HistoryRow:
        """Close the current row and start a new one."""
        means = [s / self._steps for s in self._sums]
        ips = self._images / self._seconds if self._seconds > 0 else 0.0
        row = HistoryRow(step, epoch, *means, lr_g, lr_d, ips, elapsed)
        self._sums = [0.0] * len(STATS)
        self._steps = self._images = 0
        self._seconds = self._since = 0.0
        return row


class Throughput:
    """Images per second, smoothed (EMA over intervals) for the ETA."""

    def __init__(self, smoothing: float = 0.3):
        self.smoothing = smoothing
        self.rate: float | None = None  # steps per second

    def update(self, steps: int, seconds: float) -> None:
        if seconds <= 0 or steps <= 0:
            return
        rate = steps / seconds
        self.rate = rate if self.rate is None else self.rate + self.smoothing * (rate - self.rate)

    def eta(self, remaining_steps: int) -> float | None:
        if self.rate is None or self.rate <= 0:
            return None
        return remaining_steps / self.rate


class MetricsCsv:
    """run_dir/metrics.csv, one row per history row, flushed as written."""

    def __init__(self, path: str | Path, history: list[HistoryRow] | None = None):
        self.path = Path(path)
        # (Re)write from the history so a resumed run's file matches its checkpoint exactly.
        self._file = open(self.path, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._file)
        self._writer.writerow(COLUMNS)
        for row in history or []:
            self._writer.writerow(format_row(row))
        self._file.flush()

    def append(self, row: HistoryRow) -> None:
        self._writer.writerow(format_row(row))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def format_row(row: HistoryRow) -> list[str]:
    out = []
    for name, value in zip(COLUMNS, row):
        if name in ("step", "epoch"):
            out.append(str(int(value)))
        elif not math.isfinite(value):
            out.append(str(value))
        elif name in ("lr_g", "lr_d"):
            out.append(f"{value:.6g}")
        elif name in ("images_per_sec", "elapsed_s"):
            out.append(f"{value:.1f}")
        elif name == "swd":
            out.append(f"{value:.2f}")
        else:
            out.append(f"{value:.5f}")
    return out
