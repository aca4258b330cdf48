"""The run's state as the app shows it: one value, so a typo is an error rather than a
state that no branch ever matches."""

from __future__ import annotations

import enum


class RunState(enum.Enum):
    """The value is the text the status panel shows."""

    LOADING = "loading…"
    TRAINING = "training"
    PAUSING = "pausing…"
    PAUSED = "paused"
    STOPPING = "stopping…"
    FINISHED = "finished"
    ERROR = "error"
    DISCONNECTED = "disconnected"
    """This window lost its service (the run may go on: ``tui-gan attach``)."""

    @property
    def takes_requests(self) -> bool:
        """The engine is training (or paused) and honours snapshot, export, lr... requests."""
        return self in (RunState.TRAINING, RunState.PAUSING, RunState.PAUSED)
