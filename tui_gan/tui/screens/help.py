"""The help screen: the keys (rows made from keys.KEYS by the training screen), then the
command palette's key.

Compact enough that every key shows at once at 80x24 (the title sits in the border, the
rows take no padding at the edge), and a scrolling box all the same: Down, PageDown and the
mouse wheel reach the rest on a smaller terminal.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

PALETTE = "Command palette: every action by name"


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        table = Table(box=None, padding=(0, 1), pad_edge=False, show_header=False)
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, description in [*self.keys, (self.app.COMMAND_PALETTE_BINDING, PALETTE)]:
            table.add_row(key, description)
        note = Text("New learning rates wait for the next epoch unless you choose 'Apply now'.", style="dim")
        dialog = VerticalScroll(Static(table), Static(note, id="help-note"), id="help-dialog")
        dialog.border_title = "tui-gan keys"
        dialog.border_subtitle = "escape closes"
        yield dialog

    def action_close(self) -> None:
        self.dismiss(None)
