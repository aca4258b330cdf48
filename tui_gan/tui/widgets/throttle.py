"""Redraw at most every so often: every redraw holds the CPU and the GIL that the training
thread needs (see docs/benchmark.md, "Speed of the app")."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class Throttle:
    """Run ``action`` at most every ``interval`` seconds.

    ``request()`` runs it at once if the last run is long enough ago; otherwise it runs
    once, on a timer of ``owner`` (a Textual app or widget), when it is due, so the action
    then shows the newest state and requests in between cost nothing."""

    def __init__(self, owner, interval: float, action: Callable[[], None]) -> None:
        self.owner = owner
        self.interval = interval
        self.action = action
        self.last = -math.inf  # time.monotonic() of the last run
        self._timer = False

    def request(self) -> None:
        wait = self.last + self.interval - time.monotonic()
        if wait <= 0:
            self.run()
        elif not self._timer:
            self._timer = True
            self.owner.set_timer(wait, self._due)

    def _due(self) -> None:
        self._timer = False
        self.run()

    def run(self) -> None:
        self.last = time.monotonic()
        self.action()
