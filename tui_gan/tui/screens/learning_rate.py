"""The learning-rate dialog: new rates for G and D, or the ones the run started with,
applied at the next epoch boundary or now."""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from ...core.arguments import RequestError, learning_rate


@dataclass(frozen=True)
class LearningRates:
    lr_g: float
    lr_d: float
    now: bool
    reset: bool = False
    """The rates the run started (or was resumed) with, as the run has them: not retyped."""


def parse_lr(text: str) -> tuple[float | None, str]:
    """(value, '') for a valid learning rate (core/arguments.learning_rate's rule), else (None,
    a message saying what is wrong)."""
    text = text.strip()
    if not text:
        return None, "enter a learning rate, e.g. 2e-4"
    try:
        value = float(text)
    except ValueError:
        return None, f"{text!r} is not a number (try 2e-4 or 0.0001)"
    try:
        return learning_rate(value, "it"), ""
    except RequestError as exc:
        return None, str(exc)


class LearningRateDialog(ModalScreen[LearningRates | None]):
    """Edit the learning rates of G and D. Applied at the next epoch boundary, or now.
    ``first``: the rates the run started with, which Reset puts back in the fields."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, lr_g: float, lr_d: float, first: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.lr_g, self.lr_d = lr_g, lr_d
        self.first = first
        self.reset_shown: tuple[str, str] | None = None  # the fields as Reset filled them

    def compose(self) -> ComposeResult:
        with Vertical(id="lr-dialog"):
            with Horizontal(id="lr-top"):
                yield Label("Learning rates", id="lr-title")
                yield Button("Reset to the starting rates", id="lr-reset", compact=True, disabled=self.first is None,
                             tooltip="the rates the run was started (or resumed) with, applied as you choose below")
            with Grid(id="lr-grid"):
                yield Label("G")
                yield Input(f"{self.lr_g:g}", id="lr-g")
                yield Label("", classes="lr-gap")
                yield Label("", id="lr-g-msg", classes="lr-msg")
                yield Label("D")
                yield Input(f"{self.lr_d:g}", id="lr-d")
                yield Label("", classes="lr-gap")
                yield Label("", id="lr-d-msg", classes="lr-msg")
            with Horizontal(id="lr-buttons"):
                yield Button("Apply at epoch end", id="lr-epoch", variant="primary")
                yield Button("Apply now", id="lr-now")
                yield Button("Cancel", id="lr-cancel")

    def on_mount(self) -> None:
        self.query_one("#lr-g", Input).focus()

    @on(Input.Changed)
    def validate_field(self, event: Input.Changed) -> None:
        _, message = parse_lr(event.value)
        self.query_one(f"#{event.input.id}-msg", Label).update(message)
        event.input.set_class(bool(message), "-invalid")
        valid = all(parse_lr(i.value)[0] is not None for i in self.query(Input))
        self.query_one("#lr-epoch", Button).disabled = not valid
        self.query_one("#lr-now", Button).disabled = not valid

    @on(Input.Submitted)
    def submit_from_field(self) -> None:
        self._finish(now=False)

    @on(Button.Pressed, "#lr-epoch")
    def apply_at_epoch_end(self) -> None:
        self._finish(now=False)

    @on(Button.Pressed, "#lr-now")
    def apply_now(self) -> None:
        self._finish(now=True)

    @on(Button.Pressed, "#lr-reset")
    def reset(self) -> None:
        """The run's first rates in the fields; applied (at epoch end or now) as a reset."""
        if self.first is None:
            return
        self.reset_shown = (f"{self.first[0]:g}", f"{self.first[1]:g}")
        self.query_one("#lr-g", Input).value, self.query_one("#lr-d", Input).value = self.reset_shown

    @on(Button.Pressed, "#lr-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def _finish(self, now: bool) -> None:
        fields = self.query_one("#lr-g", Input).value, self.query_one("#lr-d", Input).value
        lr_g, lr_d = (parse_lr(text)[0] for text in fields)
        if lr_g is None or lr_d is None:
            self.app.bell()
            return
        self.dismiss(LearningRates(lr_g, lr_d, now, reset=fields == self.reset_shown))
