"""Where a run is: its step, its epoch and the batch within it. The loop advances it; the
outputs (checkpoints, events) and request serving read the same object."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Position:
    step: int = 0
    """Steps done in the whole run (a resumed run continues the count)."""
    epoch: int = 0
    """Epochs done."""
    batch_in_epoch: int = 0
    steps_per_epoch: int = 0
    total_steps: int = 0
    """Where the run ends: its epochs' steps, or --max-steps if fewer."""

    def advance(self) -> bool:
        """One step done; whether it was the epoch's last (``next_epoch`` then turns the page)."""
        self.step += 1
        self.batch_in_epoch += 1
        return self.batch_in_epoch >= self.steps_per_epoch

    def next_epoch(self) -> None:
        self.epoch += 1
        self.batch_in_epoch = 0

    @property
    def epoch_start(self) -> bool:
        return self.batch_in_epoch == 0
