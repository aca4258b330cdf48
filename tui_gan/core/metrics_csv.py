"""Reading a run's metrics.csv back into history rows (the engine writes it: engine/metrics.py).

The one reader of the file: ``tui-gan ls`` (the last step, the best SWD), ``--compare``
and the app's run picker use it. A run that is still training appends a row every couple
of seconds, so ``MetricsCsvReader`` follows the file: each ``refresh()`` reads only the
bytes appended since the last one, and only whole lines (a row being written is left for
the next look). A resumed run rewrites the file from its checkpoint's history; the reader
notices (the line it read last is no longer where it was) and reads it again from the
start. Standard library only.
"""

from __future__ import annotations

import csv
import math
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from .history import HistoryRow

REQUIRED_COLUMNS = ("step", "epoch")


class MetricsCsvError(Exception):
    """The file could not be read as a tui-gan metrics.csv (missing, unreadable, or not one)."""


class MetricsCsvReader:
    """One metrics.csv, followed as it grows: ``rows`` holds every row read so far."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows: list[HistoryRow] = []
        self.skipped = 0
        """Lines that could not be read as a row (cut short by a killed process, edited)."""
        self._columns: list[str] | None = None
        self._offset = 0  # bytes read, up to the end of the last whole line
        self._last_line = b""  # that line, to notice a file rewritten under us
        self._stamp: tuple[int, int, int] | None = None  # (inode, size, mtime) at the last read
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Read what was appended since the last call (or the whole file again, when it was
        rewritten). True when ``rows`` changed. Raises MetricsCsvError. Thread-safe: a slow
        refresh that a newer one overtakes (the app's worker, on a loaded machine) finishes
        first instead of interleaving with it."""
        with self._lock:
            return self._refresh()

    def _refresh(self) -> bool:
        try:
            info = os.stat(self.path)
            stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
            if stamp == self._stamp:
                return False
            with open(self.path, "rb") as f:
                changed = self._read_from(f, info.st_size)
        except OSError as exc:
            raise MetricsCsvError(f"{self.path}: cannot be read ({exc.strerror or exc})") from None
        self._stamp = stamp
        return changed

    def _read_from(self, f: BinaryIO, size: int) -> bool:
        start = self._offset - len(self._last_line)
        rewritten = size < self._offset
        if not rewritten and self._offset:
            f.seek(start)
            rewritten = f.read(len(self._last_line)) != self._last_line
        if rewritten:
            self.rows, self._columns, self._offset, self._last_line = [], None, 0, b""
            self.skipped = 0
            f.seek(0)
        data = f.read()
        whole = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next look
        if not whole:
            return rewritten
        lines = whole.splitlines(keepends=True)
        self._offset += len(whole)
        self._last_line = lines[-1]
        try:
            text = [line.decode("utf-8") for line in lines]
        except UnicodeDecodeError:
            raise MetricsCsvError(f"{self.path}: not a tui-gan metrics.csv (not text)") from None
        if self._columns is None:
            self._columns = self._header(_fields(text.pop(0)))
        before = len(self.rows)
        self.rows.extend(self._rows(self._columns, text))
        return rewritten or len(self.rows) != before

    def _rows(self, columns: list[str], lines: Iterable[str]) -> Iterable[HistoryRow]:
        """The rows that parse; a damaged line (a crash mid-write, an edit) is counted and
        skipped, not fatal."""
        for line in lines:
            try:
                fields = _fields(line)
                if fields is None or len(fields) != len(columns):
                    raise ValueError("wrong number of fields")
                yield HistoryRow.from_values(columns, [float(value) for value in fields])
            except (ValueError, OverflowError, csv.Error):  # not numbers, a step that is not finite, not CSV
                self.skipped += 1

    def _header(self, columns: list[str] | None) -> list[str]:
        missing = [name for name in REQUIRED_COLUMNS if columns is None or name not in columns]
        if missing:
            raise MetricsCsvError(f"{self.path}: not a tui-gan metrics.csv (no {missing[0]!r} column)")
        assert columns is not None  # else every required column is missing
        return columns


def _fields(line: str) -> list[str] | None:
    """One line's fields; None where it is not a CSV line at all (each line is parsed on its
    own, so one damaged line cannot take the reader's state, or the rest, with it)."""
    try:
        return next(csv.reader([line]), [])
    except csv.Error:
        return None


def read_metrics(path: str | Path) -> list[HistoryRow]:
    """Every row of a metrics.csv. Raises MetricsCsvError."""
    reader = MetricsCsvReader(path)
    reader.refresh()
    return reader.rows


def history_or_empty(path: str | Path) -> list[HistoryRow]:
    """Every row of a metrics.csv; none where it is missing or cannot be read (a listing of
    runs shows what it can of each)."""
    try:
        return read_metrics(path)
    except MetricsCsvError:
        return []


def best_swd(rows: Iterable[HistoryRow]) -> float | None:
    """The lowest SWD of the rows (the measurement best.pt holds), None when none was measured."""
    measured = [row.swd for row in rows if math.isfinite(row.swd)]
    return min(measured) if measured else None


def latest_swd(rows: list[HistoryRow]) -> float | None:
    """The newest SWD of the rows, None when none was measured."""
    return next((row.swd for row in reversed(rows) if math.isfinite(row.swd)), None)
