"""Which samples the samples panel shows: the live ones, or one epoch's end (``[`` and ``]``).

Plain logic, no widget: the training screen draws what ``show``, ``live`` and ``browse``
return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Shown:
    """Images for the samples panel, and the subtitle that says what they are."""

    images: Any
    subtitle: str


class SampleHistory:
    def __init__(self) -> None:
        self.live: tuple[int, Any] | None = None  # (step, uint8 images) of the newest samples
        self.epochs: list[tuple[int, Any]] = []  # (epoch, uint8 images) of each epoch's end
        self.browsing: int | None = None  # index into epochs; None: live

    def set_live(self, step: int, images: Any) -> Shown | None:
        """New live samples: what to show now (None while browsing the epochs)."""
        self.live = (step, images)
        return None if self.browsing is not None else self.shown_live()

    def shown_live(self) -> Shown | None:
        if self.live is None:
            return None
        step, images = self.live
        return Shown(images, f"step {step}")

    def browse(self, delta: int) -> Shown | None:
        """``[`` (delta -1) and ``]`` (+1): step through the epoch-end samples; past the
        newest, back to the live ones. None: nothing to change (already live, or no epochs)."""
        if not self.epochs:
            return None
        if self.browsing is None:
            if delta > 0:
                return None  # already live
            index = len(self.epochs) - 1
        else:
            index = self.browsing + delta
        if index >= len(self.epochs):
            self.browsing = None
            return self.shown_live()
        self.browsing = max(0, index)
        epoch, images = self.epochs[self.browsing]
        return Shown(images, f"epoch {epoch} · {self.browsing + 1}/{len(self.epochs)} · ] live")
