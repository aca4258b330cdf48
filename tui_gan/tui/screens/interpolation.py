"""The latent-interpolation view: the engine's latent walks, animated in half blocks, or in
real pixels where the app draws them (every frame is made once, then the view shows them in
turn; it plays in half blocks until they are all made).

Each frame is one point on every walk; the view loops through the frames. A conditional
run's walks are each in a class: a caption under the title names those shown, in the order
the tiles are read (left to right, then down). ``g`` writes
them as a GIF next to the run's samples. Frames are drawn at FPS while the view is open;
each costs one samples redraw, which the training thread feels on a small CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

from ...core.errors import UserError
from ...core.rundir import RunDir
from ..widgets.samples import SamplesView

FPS = 8


def walk_caption(classes: list[str]) -> str:
    """The classes of the walks, in the order the tiles are read."""
    return "classes, left to right then down: " + " · ".join(classes)


class InterpolationScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,i", "close", "Close"),
        Binding("g", "gif", "Save as GIF"),
        Binding("space", "toggle_play", "Play / pause"),
    ]

    def __init__(self, frames: Any, step: int, run_dir: str,
                 log_line: Callable[[str, str], None] | None = None, classes: list[str] | None = None) -> None:
        """``log_line(text, style)`` writes to the training screen's event log: the GIF's
        path stays there after this view is closed. ``classes``: a conditional run's, the
        class of each walk."""
        super().__init__()
        self.frames = frames  # uint8 (frames, walks, C, H, W), numpy
        self.step = step
        self.run_dir = run_dir
        self.log_line = log_line
        self.walk_classes = classes  # not ``classes``: a widget's CSS classes
        self._caption = walk_caption(classes) if classes else ""
        self.frame = 0
        self.playing = True

    def compose(self) -> ComposeResult:
        with Vertical(id="walk-dialog"):
            yield Label(self._title(), id="walk-title")
            if self.walk_classes:
                yield Label(self._caption, id="walk-classes")
            yield SamplesView(id="walk-view")
            yield Label("space: play/pause · g: save as GIF · escape: close", id="walk-help")

    def _title(self) -> str:
        n, walks = self.frames.shape[0], self.frames.shape[1]
        state = "" if self.playing else " (paused)"
        return f"latent walks at step {self.step}: {walks} walks, frame {self.frame + 1}/{n}{state}{self.app.graphics.label}"

    def on_mount(self) -> None:
        self.query_one(SamplesView).set_sequence(list(enumerate(self.frames)))
        self._show()
        self.set_interval(1 / FPS, self._advance)

    def _show(self) -> None:
        view = self.query_one(SamplesView)
        view.set_images(self.frames[self.frame], key=self.frame)
        self.query_one("#walk-title", Label).update(self._title())
        if self.walk_classes and view.shown:  # the walks the view has room for, not the rest
            caption = walk_caption(self.walk_classes[:view.shown])
            if caption != self._caption:
                self._caption = caption
                self.query_one("#walk-classes", Label).update(caption)

    def _advance(self) -> None:
        if self.playing:
            self.frame = (self.frame + 1) % self.frames.shape[0]
            self._show()

    def action_toggle_play(self) -> None:
        self.playing = not self.playing
        self._show()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_gif(self) -> None:
        self.notify("writing the GIF…")
        self._write_gif()

    @work(thread=True, exclusive=True, group="walk-gif", exit_on_error=False)
    def _write_gif(self) -> None:
        from ...pictures.progression import frames_gif

        path = RunDir(self.run_dir).interpolation_gif(self.step)
        try:
            frames_gif(self.frames, path, frame_ms=1000 // FPS, caption=f"step {self.step}")
            if self.log_line is not None:
                self.app.call_from_thread(self.log_line, f"latent walk GIF: {path}", "green")
            self.app.call_from_thread(self.notify, str(path), title="GIF saved")
        except UserError as exc:
            self.app.call_from_thread(self.notify, str(exc), severity="error")
