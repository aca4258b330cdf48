"""Measuring what the app's screen costs training, within one run.

Separate app and headless runs differ by up to ±12% from run to run on a small machine,
more than the effect being measured. So the app alternates stretches of ``phase`` seconds
with the screen updating and with it frozen (progress and samples not drawn), and the
training speed of the two kinds of stretch is compared. The first and last stretch are
dropped (start-up, finish).
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class ABResult:
    updating: float
    """Steps per second while the screen updated."""
    frozen: float
    """Steps per second while it was frozen."""
    stretches: int

    @property
    def ratio(self) -> float:
        return self.updating / self.frozen if self.frozen > 0 else float("nan")


class ScreenAB:
    def __init__(self, phase: float = 10.0, clock=time.monotonic) -> None:
        self.phase = phase
        self.clock = clock
        self.started: float | None = None
        self._records: list[tuple[bool, float, int]] = []

    def start(self) -> None:
        self.started = self.clock()

    def updating(self) -> bool:
        """Whether the screen should update now: the even stretches (and before the start)."""
        if self.started is None:
            return True
        return int((self.clock() - self.started) // self.phase) % 2 == 0

    def record(self, step: int) -> None:
        """A progress report at ``step``, in the current stretch."""
        if self.started is not None:
            self._records.append((self.updating(), self.clock(), step))

    def result(self) -> ABResult:
        stretches: list[list[tuple[bool, float, int]]] = []
        for rec in self._records:
            if stretches and stretches[-1][-1][0] == rec[0]:
                stretches[-1].append(rec)
            else:
                stretches.append([rec])
        totals = {True: [0, 0.0], False: [0, 0.0]}
        used = 0
        for stretch in stretches[1:-1]:
            if len(stretch) < 3:
                continue
            # from the second report on: the first may carry steps of the previous stretch
            totals[stretch[0][0]][0] += stretch[-1][2] - stretch[1][2]
            totals[stretch[0][0]][1] += stretch[-1][1] - stretch[1][1]
            used += 1
        rate = {k: (s / t if t > 0 else 0.0) for k, (s, t) in totals.items()}
        return ABResult(updating=rate[True], frozen=rate[False], stretches=used)
