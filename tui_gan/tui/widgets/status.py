"""The status panel: state, epoch progress, step, throughput, ETA, the last checkpoint (and
writes that fail: a full disk), device, learning rates, as the run's view (core/runview.py)
has them.

One widget that renders itself at a fixed height: updating it repaints these few lines
only, never the layout of the whole screen (which would redraw the samples and chart).
"""

from __future__ import annotations

import time

from rich.text import Text

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
FULL_HEIGHT = 10  # lines of content in the full layout (11 with a GPU); fewer rows get the compact one
AGE_REDRAW_S = 5.0  # the last checkpoint's age grows while nothing else is redrawn (a pause)
GPU_CLASS = "-gpu"  # the panel grows by the GPU's line (app.tcss) once it has one


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

    def on_mount(self) -> None:
        self.set_interval(AGE_REDRAW_S, self.redraw)

    def saved(self) -> Text:
        """'step 1,200, 3m05s ago' of the newest checkpoint, and while writes fail, for how
        long (in red; the state line says why)."""
        view, now = self.view, time.time()
        text = Text(Report.checkpoint_age(view.last_checkpoint, now))
        if view.writes_failing is not None:
            text.append(f" · failing {format_duration(max(0.0, now - view.writes_failing.wall_time))}",
                        style="bold red")
        return text

    def redraw(self) -> None:
        if self.view.device_status is not None and not self.has_class(GPU_CLASS):
            self.add_class(GPU_CLASS)  # one more line: a layout change, once
        self.refresh()  # never layout=True: see the module docstring

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
        lr = "–" if view.lrs is None else f"G {view.lrs[0]:.2g}  D {view.lrs[1]:.2g}"
        pending = Text("")
        if view.lr_pending is not None:
            pending = Text(f"→ G {view.lr_pending.lr_g:.2g}  D {view.lr_pending.lr_d:.2g} at epoch end",
                           style="yellow")
        pause = "at every epoch end" if view.auto_pause else "off"
        device = f"{started.device} · {started.precision}" if started else "…"
        run_dir, gpu_status = (started.run_dir if started else "") or "–", view.device_status

        if height < FULL_HEIGHT:  # 80x24 and other short terminals
            gpu = [Text(f"GPU {gpu_text(gpu_status, width - 4)}")] if gpu_status else []
            return [state, bar, Text(f"{step} · {speed} · ETA {eta}"), Text("saved ").append_text(self.saved()),
                    Text(f"lr {lr} ").append_text(pending), *gpu, Text(f"{device} · auto-pause {pause}", style="dim"),
                    Text(run_dir, style="dim")]

        rows = [state, bar]
        gpu = [("gpu", gpu_text(gpu_status, width - 7))] if gpu_status else []
        for label, value in (("step", step), ("speed", speed), ("ETA", eta), ("saved", self.saved()),
                             ("device", device), *gpu, ("lr", Text(lr + "  ").append_text(pending)), ("pause", pause),
                             ("run", run_dir)):
            rows.append(Text().append(f"{label:<7}", style="dim").append_text(value if isinstance(value, Text) else Text(value)))
        return rows
