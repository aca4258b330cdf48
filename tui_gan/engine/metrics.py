"""Metric rows from progress-interval averages, metrics.csv, and throughput.

Per-step statistics are summed on the device (meter.py); this module only sees the
averages read back once per progress interval, so nothing here forces a device sync.
The rows themselves are core/history.py's HistoryRow.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..core.atomic import atomic_write
from ..core.history import COLUMNS, STATS, HistoryRow
from ..core.outage import METRICS, WriteWatch
from ..core.writes import AppendFile


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
    """run_dir/metrics.csv, one row per history row, written as it comes. Rows the disk
    does not take (a full disk) wait in memory, and are written, in order, with the first
    row it takes again: the file loses none. (They are the history's rows, which the run
    keeps anyway: waiting costs a reference each.)"""

    def __init__(self, path: str | Path | None, history: list[HistoryRow] | None = None,
                 writes: WriteWatch | None = None) -> None:
        """``path`` None: no file (a rank other than 0 of a multi-process run). The file is
        (re)written from ``history``: a resumed run's then matches its checkpoint exactly."""
        self.path = Path(path) if path is not None else None
        self.writes = writes if writes is not None else WriteWatch()
        self._waiting: list[HistoryRow] = list(history or [])
        self._file: AppendFile | None = None
        """Open once the file has been written from the history (atomically: the old one
        stays until the new one is complete)."""
        self._behind = False  # a write failed since the last that worked
        self._flush()

    def append(self, row: HistoryRow) -> None:
        """Write ``row`` (after any that wait for the disk)."""
        self._waiting.append(row)
        self._flush()

    def _flush(self) -> None:
        path, rows = self.path, self._waiting
        if path is None:
            rows.clear()
            return
        start = self._file is None
        if not rows and not start:
            return

        def write() -> None:
            if start and (path.is_file() or not path.exists()):
                atomic_write(path, lambda f: f.write(_lines([COLUMNS, *map(format_row, rows)])))
                self._file = AppendFile(path)
            elif start:  # a device or a pipe (os.devnull): written to, never replaced
                self._file = AppendFile(path)
                self._file.write(_lines([COLUMNS, *map(format_row, rows)]))
            else:
                assert self._file is not None
                self._file.write(_lines(map(format_row, rows)))

        what = f"metrics rows from step {rows[0].step}" if rows and not start else "metrics.csv"
        failure = self.writes.try_write(METRICS, path, write, what, late=len(rows) if self._behind else 0, kept=True)
        self._behind = failure is not None
        if failure is None:
            rows.clear()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _lines(rows: Iterable[Sequence[str]]) -> bytes:
    """Rows as CSV lines (csv's own line ends, as the file has always had)."""
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8")


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
