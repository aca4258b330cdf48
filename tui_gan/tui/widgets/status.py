"""The status panel: state, epoch progress, step, throughput, ETA, the last checkpoint (and
writes that fail: a full disk), device, learning rates, a conditional run's classes, as the
run's view (core/runview.py) has them.

A line too long for the panel (a CUDA device's name, 'cpu × 2 processes (gloo)', a pending
learning rate) goes on at the next line, broken between its parts (' · '), or between words
where one part is longer than a line: at 80x24 the panel is 28 cells wide. The panel is as
tall as its lines. Updating it repaints these few lines only; the layout of the whole screen
(which redraws the samples and chart) is redone only when the panel needs more lines than it
has (the device is known, the GPU's line comes, a number gets longer) or the terminal's
height switches it between the compact and the labelled layout.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from rich.cells import cell_len
from rich.text import Text
from textual.geometry import Size

from ...core import events as ev
from ...core.report import GIB, Report, format_device_status, format_duration
from ...core.runview import RunView
from ..state import RunState
from .textlines import TextLines

STATE_STYLES = {
    RunState.LOADING: "yellow",
    RunState.TRAINING: "bold green",
    RunState.PAUSING: "yellow",
    RunState.PAUSED: "bold yellow",
    RunState.STOPPING: "yellow",
    RunState.FINISHED: "bold cyan",
    RunState.ERROR: "bold red",
    RunState.DISCONNECTED: "bold magenta",
}
AGE_REDRAW_S = 5.0  # the last checkpoint's age grows while nothing else is redrawn (a pause)
SHORT_SCREEN = "-short"  # the app's breakpoint class of 80x24 and other short terminals: the compact layout
LABEL_WIDTH = 7  # 'device ': the full layout's labels, before each value
LR_JOINER = "  "  # between the rates and a pending change, as between G's rate and D's


def gpu_text(e: ev.DeviceStatus, width: int) -> str:
    """The GPU's line in ``width`` cells: the longest of these forms that fits,
    '41.2/139.8 GiB (run 38.0) · 97% busy' (the device's memory in use, of which this run's
    allocator holds 38.0), '41.2/139.8 GiB · 97% busy', '41.2/139.8 GiB 97%'."""
    shown = format_device_status(e)
    memory, busy = shown.partition(" · ")[::2]
    longer = f"{memory} (run {e.memory_reserved / GIB:.1f})" + (f" · {busy}" if busy else "")
    if len(longer) <= width:
        return longer
    if len(shown) <= width:
        return shown
    return shown.replace(" · ", " ").replace(" busy", "")


def wrap_parts(parts: Sequence[str | Text], width: int, joiner: str = " · ") -> list[Text]:
    """``parts`` joined by ``joiner`` in lines of ``width`` cells: a part that does not fit
    on the line goes to the next; one longer than a line breaks between its words."""
    lines: list[Text] = []
    for part in parts:
        part = Text(part) if isinstance(part, str) else part
        if lines and cell_len(lines[-1].plain) + cell_len(joiner) + cell_len(part.plain) <= width:
            lines[-1].append(joiner).append_text(part)
        else:
            lines.extend(wrap_words(part, width))
    return lines


def wrap_words(text: Text, width: int) -> list[Text]:
    """``text`` broken between words into lines of ``width`` cells (a word longer than a
    line gets one of its own, and the panel's ellipsis)."""
    lines: list[Text] = []
    start = end = 0
    for word in re.finditer(r"\S+", text.plain):
        if end and cell_len(text.plain[start:word.end()]) > width:
            lines.append(text[start:end])
            start = word.start()
        end = word.end()
    lines.append(text[start:end])
    return lines


def class_ranges(classes: Sequence[int]) -> str:
    """Classes as runs of their labels, as the data numbers them (label i is the config's
    class_names[i]; the digits' names are their labels): [3, 4, 5, 9, 0] -> '3–5, 9, 0'."""
    runs: list[list[int]] = []
    for c in classes:
        if runs and c == runs[-1][-1] + 1:
            runs[-1].append(c)
        else:
            runs.append([c])
    return ", ".join(f"{run[0]}–{run[-1]}" if len(run) > 1 else f"{run[0]}" for run in runs)


def classes_text(count: int, shown: Sequence[int]) -> str:
    """'3–5 of 10 shown' (the labels of the classes on screen, of how many classes), 'all 10
    shown'; '10 classes' before any are shown."""
    if not shown:
        return f"{count} classes"
    return f"all {count} shown" if len(set(shown)) >= count else f"{class_ranges(shown)} of {count} shown"


def path_tail(path: str, width: int) -> str:
    """``path`` in ``width`` cells: whole, or its end from a '/' on ('…/runs/2024-05-01_12-00-00'),
    since the end is what names the run."""
    if cell_len(path) <= width:
        return path
    tail = path[len(path) - (width - 1):]
    return "…" + (tail[tail.find("/"):] if "/" in tail else tail)


def progress_bar(done: int, total: int, width: int) -> Text:
    """``━━━━╸────  42%`` in ``width`` cells."""
    fraction = 0.0 if total <= 0 else min(1.0, max(0.0, done / total))
    label = f" {fraction * 100:3.0f}%"
    cells = max(1, width - len(label))
    filled = fraction * cells
    full = int(filled)
    text = Text("━" * full, style="bright_green")
    if full < cells:
        text.append("╸" if filled - full >= 0.5 else "─", style="bright_green" if filled - full >= 0.5 else "grey35")
        text.append("─" * (cells - full - 1), style="grey35")
    text.append(label)
    return text


class StatusPanel(TextLines):
    """Reads the run's state from ``view``; the progress it shows is the one it was given
    last (``show_progress``: the screen gives one at most every so often)."""

    def __init__(self, view: RunView, **kwargs) -> None:
        super().__init__(**kwargs)
        self.view = view
        self.state = RunState.LOADING
        self.detail = ""
        self.progress: ev.Progress | None = None
        self.images_per_sec = 0.0
        """The last speed measured, shown until the next one (a progress of 0 img/s had no
        measurement in its interval)."""
        self.measured_compact: bool | None = None
        """The layout the panel's height was last measured for (None: not measured yet)."""
        self.classes_shown: list[int] = []
        """A conditional run's: the classes of the samples panel's rows on screen."""

    def on_mount(self) -> None:
        self.set_interval(AGE_REDRAW_S, self.redraw)

    def saved(self) -> list[Text]:
        """'step 1,200, 3m05s ago' of the newest checkpoint, and while writes fail, for how
        long (in red; the state line says why)."""
        view, now = self.view, time.time()
        parts = [Text(Report.checkpoint_age(view.last_checkpoint, now))]
        if view.writes_failing is not None:
            failing = format_duration(max(0.0, now - view.writes_failing.wall_time))
            parts.append(Text(f"failing {failing}", style="bold red"))
        return parts

    @property
    def compact(self) -> bool:
        """Whether the screen is short (80x24): one line per group of values, no labels."""
        return self.is_attached and self.screen.has_class(SHORT_SCREEN)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        self.measured_compact = self.compact
        return len(self.lines(width, 0))

    def notify_style_update(self) -> None:
        super().notify_style_update()
        # A terminal only made taller or shorter keeps the panel's width, so nothing else
        # measures it again when the screen's breakpoint class turns the other layout on.
        if self.measured_compact is not None and self.compact != self.measured_compact:
            self.refresh(layout=True)

    def redraw(self) -> None:
        # Grows only: a value a digit shorter at every other redraw would otherwise move the
        # whole layout back and forth; the next layout for any other reason shrinks it.
        width, height = self.size
        self.refresh(layout=len(self.lines(width, height)) > height)

    def show_progress(self, e: ev.Progress) -> None:
        self.progress = e
        if e.images_per_sec:
            self.images_per_sec = e.images_per_sec
        self.redraw()

    @property
    def step(self) -> int:
        """The step shown."""
        started = self.view.started
        return self.progress.step if self.progress else started.step if started else 0

    def _position(self) -> tuple[int, int, int, int, int, float | None]:
        """(epoch, steps into it, steps per epoch, step, total steps, ETA) as shown."""
        p, started = self.progress, self.view.started
        if p is not None:
            return p.epoch, p.epoch_step, p.steps_per_epoch, p.step, p.total_steps, p.eta_s
        if started is not None:
            into = started.step - started.epoch * started.steps_per_epoch
            return started.epoch, into, started.steps_per_epoch, started.step, started.total_steps, None
        return 0, 0, 0, 0, 0, None

    def lines(self, width: int, height: int) -> list[Text]:
        """As many lines as the values take at ``width`` (``height`` follows from them)."""
        width = max(10, width)
        view, started = self.view, self.view.started
        epochs = started.config["epochs"] if started else 0
        at_epoch, epoch_step, steps_per_epoch, at_step, total_steps, eta_s = self._position()
        state = Text(self.state.value, style=STATE_STYLES[self.state])
        if self.detail:
            state.append(f"  {self.detail}", style="dim")
        elif view.writes_failing is not None:  # the danger stays in sight while the run trains on
            state.append(f"  {view.writes_failing.reason}", style="bold red")
        epoch = f"epoch {min(at_epoch + 1, epochs) if epochs else '–'}/{epochs or '–'} "
        all_done = bool(epochs) and at_epoch >= epochs  # the last epoch is full, not the next one empty
        done = steps_per_epoch if all_done else epoch_step
        bar = Text(epoch).append_text(progress_bar(done, steps_per_epoch, width - len(epoch)))
        step = f"{at_step:,}/{total_steps:,}" if total_steps else f"{at_step:,}"
        speed = f"{self.images_per_sec:,.0f} img/s" if self.images_per_sec else "– img/s"
        eta = format_duration(eta_s) if self.state is RunState.TRAINING else "–"
        lr = ["–" if view.lrs is None else f"G {view.lrs[0]:.2g}  D {view.lrs[1]:.2g}"]
        if view.lr_pending is not None:
            lr.append(Text(f"→ G {view.lr_pending.lr_g:.2g}  D {view.lr_pending.lr_d:.2g} at epoch end",
                           style="yellow"))
        pause = "at every epoch end" if view.auto_pause else "off"
        device = [started.device, started.precision] if started else ["…"]
        run_dir, gpu_status = (started.run_dir if started else "") or "–", view.device_status
        count = len(view.class_names)
        classes = classes_text(count, self.classes_shown) if count else ""

        saved = self.saved()
        if self.compact:
            gpu = [Text(f"GPU {gpu_text(gpu_status, width - 4)}")] if gpu_status else []
            return [state, bar, *wrap_parts([step, speed, f"ETA {eta}"], width),
                    *wrap_parts([Text("saved ").append_text(saved[0]), *saved[1:]], width),
                    *wrap_parts([f"lr {lr[0]}", *lr[1:]], width, joiner=LR_JOINER), *gpu,
                    *(wrap_words(Text(classes if not self.classes_shown else f"classes {classes}"), width)
                      if classes else []),
                    *wrap_parts([Text(part, style="dim") for part in [*device, f"auto-pause {pause}"]], width),
                    Text(path_tail(run_dir, width), style="dim")]

        rows, value_width = [state, bar], width - LABEL_WIDTH
        gpu = [("gpu", [gpu_text(gpu_status, value_width)])] if gpu_status else []
        shown = [("class", [classes])] if classes else []
        for label, parts in (("step", [step]), ("speed", [speed]), ("ETA", [eta]), ("saved", saved), ("device", device),
                             *gpu, ("lr", lr), ("pause", [pause]), *shown, ("run", [path_tail(run_dir, value_width)])):
            wrapped = wrap_parts(parts, value_width, joiner=LR_JOINER if label == "lr" else " · ")
            for i, line in enumerate(wrapped):
                rows.append(Text().append(f"{label if i == 0 else '':<{LABEL_WIDTH}}", style="dim").append_text(line))
        return rows
