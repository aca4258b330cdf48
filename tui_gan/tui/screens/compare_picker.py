"""The run picker (``o``): the runs beside this one, as ``tui-gan ls`` lists them (name,
state, step, best SWD), to draw one's curves on the chart, or none.

The list is read in a thread worker (each run's metrics.csv is read for its best SWD), from
files alone: no run's service is asked anything, so a busy or hung one never holds it up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from ...core.comparison import RunSummary

NO_COMPARISON = "none"
"""The picker's answer for "compare with nothing" (a run's answer is its folder's Path)."""


def option_text(run: RunSummary, compared: str | None, name_width: int) -> Text:
    """One run's row: name, state, step, best SWD, and a mark on the one compared now."""
    text = Text(f"{run.name:<{name_width}}  ", style="bold" if run.name == compared else "")
    text.append(f"{run.state:<8}  ", style="dim" if run.state != "running" else "green")
    text.append(f"step {run.step:>7}  " if run.step is not None else "step       ?  ")
    text.append(f"best SWD {run.best_swd:6.2f}" if run.best_swd is not None else "not measured", style="")
    if run.name == compared:
        text.append("  (compared)", style="cyan")
    return text


class ComparePicker(ModalScreen[Path | str | None]):
    """Answers the picked run's folder, NO_COMPARISON, or None (escape: no change)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, folder: Path, own: Path | None, compared: str | None,
                 list_runs: Callable[[Path], list[RunSummary]]) -> None:
        """``own``: the watched run's folder, left out; ``compared``: the name of the run
        compared now, if any; ``list_runs``: reads the runs of a folder (commands/runstate.run_summaries)."""
        super().__init__()
        self.folder, self.own, self.compared, self.list_runs = folder, own, compared, list_runs
        self.runs: list[RunSummary] | None = None  # once read

    def compose(self) -> ComposeResult:
        with Vertical(id="compare-dialog"):
            yield Label("Compare with another run", id="compare-title")
            yield Label(f"reading the runs in {self.folder}…", id="compare-note")
            yield OptionList(id="compare-runs")

    def on_mount(self) -> None:
        self._read_runs()

    @work(thread=True, exclusive=True, group="compare-list", exit_on_error=False)
    def _read_runs(self) -> None:
        try:
            runs = [run for run in self.list_runs(self.folder) if run.root != self.own]
        except OSError as exc:
            self.app.call_from_thread(self._show_note, f"cannot read {self.folder}: {exc.strerror or exc}")
            return
        self.app.call_from_thread(self._show_runs, runs)

    def _show_note(self, note: str) -> None:
        if self.is_attached:
            self.query_one("#compare-note", Label).update(note)

    def _show_runs(self, runs: list[RunSummary]) -> None:
        if not self.is_attached:
            return  # closed while the runs were read
        self.runs = runs
        options = self.query_one("#compare-runs", OptionList)
        if self.compared is not None:
            options.add_option(Option(Text(f"none: stop comparing with {self.compared}", style="italic"),
                                      id=NO_COMPARISON))
        width = max((len(run.name) for run in runs), default=0)
        options.add_options([Option(option_text(run, self.compared, width), id=str(run.root)) for run in runs])
        several = "s" if len(runs) != 1 else ""
        self._show_note(f"{len(runs)} other run{several} in {self.folder}: enter compares, escape cancels" if runs
                        else f"no other runs in {self.folder} (escape closes)")
        if options.option_count:
            options.highlighted = 0
        options.focus()

    @on(OptionList.OptionSelected)
    def picked(self, event: OptionList.OptionSelected) -> None:
        choice = event.option.id
        self.dismiss(NO_COMPARISON if choice == NO_COMPARISON else Path(str(choice)))

    def action_cancel(self) -> None:
        self.dismiss(None)
