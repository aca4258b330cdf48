"""The training screen's keys that ask something of the run: pause, snapshot, export, the
learning rates, auto-pause, the latent walks, a quality measurement, whose samples to show
and which classes (a conditional run's).

Requests go to the run's control (core/contract.RunControl); what they change comes back as
events, which the screen folds into the run's view and draws. What this window has asked
for and the run has not yet confirmed (pausing…) is the screen's state (state.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any, Protocol

from textual.app import App, SystemCommand
from textual.notifications import SeverityLevel

from ..core.contract import RunControl
from ..core.runview import RunView
from .screens.learning_rate import LearningRateDialog, LearningRates
from .state import RunState

NO_CLASSES = "this run has no classes: start one with --conditional on labelled data"


def page_start(first: int, step: int, count: int, direction: int) -> int:
    """The first class of the next (``direction`` 1) or previous (-1) page of ``step`` rows
    of ``count`` classes, from ``first``. Pages start at 0 and step on; the last one ends
    at the last class (it starts at count - step, so every row it shows is a new class);
    past it, back to 0, and from 0 back to the last."""
    last = max(0, count - step)
    if direction > 0:
        return 0 if first >= last else min(first + step, last)
    return last if first == 0 else max(0, first - step)


class Viewer(Protocol):
    """What the requests use of the screen whose keys they are."""

    state: RunState

    @property
    def app(self) -> App[Any]: ...
    def set_state(self, state: RunState, detail: str = "") -> None: ...
    def log_line(self, text: str, style: str = "") -> None: ...
    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None: ...


class RunRequests:
    def __init__(self, view: RunView, screen: Viewer) -> None:
        self.view = view
        self.screen = screen
        self.control: RunControl | None = None
        """The run's control, once the app has connected to the run (``attach``)."""
        self._asked: tuple[object, int] | None = None
        """(the samples shown then, the first class) of the last show_classes: a second key
        pressed before the answer came pages on from the page asked for, not the one shown."""

    def attach(self, control: RunControl) -> None:
        self.control = control

    def _live_control(self, what: str) -> RunControl | None:
        """The run's control if the run takes requests now; else None, and a note saying why."""
        state = self.screen.state
        if self.control is None or not state.takes_requests:
            self.screen.notify(f"cannot {what} now: training is {state.value.rstrip('…')}", severity="warning")
            return None
        return self.control

    def toggle_pause(self) -> None:
        if self.control is None or not self.screen.state.takes_requests:
            self.screen.app.bell()
            return
        # toggle_pause has asked for the pause or the resume already
        self.screen.set_state(RunState.PAUSING if self.control.toggle_pause() else RunState.TRAINING)

    def _one_shot(self, what: str, noted: str, request: str) -> None:
        """Ask for the one-shot ``request`` (core/contract.REQUESTS) if the run takes it now."""
        if control := self._live_control(what):
            control.submit(request)
            self.screen.log_line(f"{noted} requested…", "dim")

    def snapshot(self) -> None:
        self._one_shot("snapshot", "snapshot", "snapshot")

    def export(self) -> None:
        self._one_shot("export", "export", "export")

    def interpolate(self) -> None:
        self._one_shot("render the latent walks", "latent walks", "interpolate")

    def measure(self) -> None:
        self._one_shot("measure the quality", "quality measurement", "measure")

    def toggle_average(self) -> None:
        control = self._live_control("switch the samples")  # not before the run has started
        started, samples = self.view.started, self.view.samples
        if control is not None and not (started and started.config.get("ema")):
            self.screen.notify("this run keeps no average of the generator: start (or resume) it with --ema",
                               severity="warning")
        elif control is not None:
            control.show_average(samples is None or samples.generator != "average")

    def show_classes(self, direction: int, on_screen: int) -> None:
        """``k`` (``direction`` 1) and ``K`` (-1): the samples' rows from the next (previous)
        ``on_screen`` classes on, as many as the panel shows; the run answers with samples,
        which every viewer shows."""
        control = self._live_control("show other classes")
        started, samples = self.view.started, self.view.samples
        if control is None or started is None:
            return
        count = len(self.view.class_names)
        if not count:
            self.screen.notify(NO_CLASSES, severity="warning")
        elif samples is None or not samples.classes:
            self.screen.notify("no samples yet: the rows of classes come with them", severity="warning")
        elif count <= on_screen:
            self.screen.notify(f"all {count} classes are shown")
        else:
            first = self._asked[1] if self._asked is not None and self._asked[0] is samples else samples.classes[0]
            first = page_start(first, on_screen or len(samples.classes), count, direction)
            self._asked = (samples, first)
            control.show_classes(first)

    def show_class(self, first: int) -> None:
        """The samples' rows from class ``first`` on (the command palette's class commands)."""
        if control := self._live_control("show other classes"):
            self._asked = (self.view.samples, first)  # k pages on from it, even before the answer
            control.show_classes(first)

    def class_commands(self) -> Iterator[SystemCommand]:
        """A conditional run's classes as commands of the palette, where typing part of a
        name finds it: a class many pages away is a few keys off, not many presses of k."""
        names = self.view.class_names
        for i, name in enumerate(names):
            yield SystemCommand(f"Samples: from class {name}", f"its row first (class {i + 1} of {len(names)})",
                                partial(self.show_class, i))

    def toggle_auto_pause(self) -> None:
        """The run answers with AutoPauseSet, which every viewer shows."""
        if control := self._live_control("change auto-pause"):
            control.set_pause_at_epoch_end(not self.view.auto_pause)

    def learning_rate(self) -> None:
        control = self._live_control("change the learning rate")
        started = self.view.started
        if control is None or started is None:
            return
        pending = self.view.lr_pending
        lr_g, lr_d = (pending.lr_g, pending.lr_d) if pending is not None else (started.lr_g, started.lr_d)
        first = started.config.get("lr_g"), started.config.get("lr_d")  # as the run was started or resumed

        def apply(result: LearningRates | None) -> None:
            if result is None:
                return
            if result.reset:
                control.reset_lr(now=result.now)
            else:
                control.set_lr(result.lr_g, result.lr_d, now=result.now)

        dialog = LearningRateDialog(lr_g, lr_d, first if None not in first else None)
        self.screen.app.push_screen(dialog, apply)
