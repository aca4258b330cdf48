"""Which samples the samples panel shows: the live ones, or one epoch's end (``[`` and ``]``),
and of a conditional run, the class of each of their rows.

Plain logic, no widget: the samples and the epoch-end samples are the run's view's
(core/runview.py); what is browsed is this window's own. The training screen draws what
``latest`` and ``browse`` return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from rich.cells import cell_len

from ..core import events as ev
from .widgets.class_grid import ClassRows


@dataclass(frozen=True)
class Shown:
    """Images for the samples panel, and the subtitle that says what they are."""

    images: Any
    subtitle: str
    rows: ClassRows | None = None
    """A conditional run's: the class of each row of the images."""


class Samples(Protocol):
    """What of the run's view (RunView) the browser reads."""

    @property
    def class_names(self) -> list[str]: ...
    def class_name(self, label: int) -> str: ...
    @property
    def samples(self) -> ev.Samples | None: ...
    @property
    def progression(self) -> list[tuple[int, Any]]: ...


class SampleHistory:
    def __init__(self, view: Samples) -> None:
        self.view = view
        self.browsing: int | None = None  # index into the view's progression; None: live

    def latest(self) -> Shown | None:
        """What to show as new live samples arrive (None while browsing the epochs)."""
        return None if self.browsing is not None else self.shown_live()

    def shown_live(self) -> Shown | None:
        live = self.view.samples
        return None if live is None else Shown(live.images, f"step {live.step}", self._rows(live.classes))

    def _rows(self, classes: list[int] | None) -> ClassRows | None:
        """The names of the rows of ``classes`` (a conditional run's samples; else None)."""
        live = self.view.samples
        if not classes or live is None or not live.classes:
            return None
        columns = len(live.images) // len(live.classes)  # the live samples' rows are as long as the epochs'
        return ClassRows(tuple(classes), tuple(self.view.class_name(c) for c in classes), columns,
                         max(map(cell_len, self.view.class_names), default=0))

    def _epoch_rows(self, images: Any) -> ClassRows | None:
        """An epoch's samples have rows from the first class on (whichever a viewer shows)."""
        live = self.view.samples
        if live is None or not live.classes:
            return None
        count = len(self.view.class_names) or max(live.classes) + 1
        rows = len(images) // (len(live.images) // len(live.classes))
        return self._rows([i % count for i in range(rows)])

    def browse(self, delta: int) -> Shown | None:
        """``[`` (delta -1) and ``]`` (+1): step through the epoch-end samples; past the
        newest, back to the live ones. None: nothing to change (already live, or no epochs)."""
        epochs = self.view.progression
        if not epochs:
            return None
        if self.browsing is None:
            if delta > 0:
                return None  # already live
            index = len(epochs) - 1
        else:
            index = self.browsing + delta
        if index >= len(epochs):
            self.browsing = None
            return self.shown_live()
        self.browsing = max(0, index)
        epoch, images = epochs[self.browsing]
        return Shown(images, f"epoch {epoch} · {self.browsing + 1}/{len(epochs)} · ] live", self._epoch_rows(images))
