"""The help screen: the keys (rows made from keys.KEYS by the training screen)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        table = Table(box=None, padding=(0, 2), show_header=False)
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, description in self.keys:
            table.add_row(key, description)
        note = Text(
            "\nEvery action is also in the command palette (ctrl+p). Learning rates change at the "
            "next epoch boundary unless you choose 'Apply now'. q saves checkpoints/last.pt before "
            "it quits.\n\nPress escape to close.",
            style="dim",
        )
        with Vertical(id="help-dialog"):
            yield Label("tui-gan keys", id="help-title")
            yield Static(table)
            yield Static(note)

    def action_close(self) -> None:
        self.dismiss(None)
