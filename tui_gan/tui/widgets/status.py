"""The status panel: state, epoch progress, step, throughput, ETA, device, learning rates.

One widget that renders itself at a fixed height: updating it repaints these few lines
only, never the layout of the whole screen (which would redraw the samples and chart).
"""

from __future__ import annotations

from rich.text import Text

from ...core import events as ev
from ...core.report import GIB, format_device_status, format_duration
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
FULL_HEIGHT = 9  # lines of content in the full layout (10 with a GPU); fewer rows get the compact one
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
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.state = RunState.LOADING
        self.detail = ""
        self.epoch = 0
        self.epochs = 0
        self.epoch_step = 0
        self.steps_per_epoch = 0
        self.step = 0
        self.total_steps = 0
        self.images_per_sec = 0.0
        self.eta: float | None = None
        self.device = "…"
        self.lr_g: float | None = None
        self.lr_d: float | None = None
        self.pending: tuple[float, float] | None = None
        self.run_dir = ""
        self.auto_pause = False
        self.gpu: ev.DeviceStatus | None = None

    def redraw(self) -> None:
        self.refresh()  # never layout=True: see the module docstring

    def show_started(self, e: ev.Started) -> None:
        self.epochs, self.epoch, self.step = e.config["epochs"], e.epoch, e.step
        self.total_steps, self.run_dir = e.total_steps, e.run_dir
        self.device = f"{e.device} · {e.precision}"
        self.lr_g, self.lr_d = e.lr_g, e.lr_d
        self.epoch_step, self.steps_per_epoch = e.step - e.epoch * e.steps_per_epoch, e.steps_per_epoch
        self.redraw()

    def show_progress(self, e: ev.Progress) -> None:
        self.epoch, self.step, self.total_steps = e.epoch, e.step, e.total_steps
        if e.images_per_sec:  # 0: not measured in this interval; keep the last speed shown
            self.images_per_sec = e.images_per_sec
        self.eta, self.lr_g, self.lr_d = e.eta_s, e.lr_g, e.lr_d
        self.epoch_step, self.steps_per_epoch = e.epoch_step, e.steps_per_epoch
        self.redraw()

    def show_device(self, e: ev.DeviceStatus) -> None:
        if self.gpu is None:
            self.add_class(GPU_CLASS)  # one more line: a layout change, once
        self.gpu = e
        self.redraw()

    def lines(self, width: int, height: int) -> list[Text]:
        width = max(10, width)
        state = Text(self.state.value, style=STATE_STYLES[self.state])
        if self.detail:
            state.append(f"  {self.detail}", style="dim")
        epoch = f"epoch {min(self.epoch + 1, self.epochs) if self.epochs else '–'}/{self.epochs or '–'} "
        all_done = bool(self.epochs) and self.epoch >= self.epochs  # the last epoch is full, not the next one empty
        done = self.steps_per_epoch if all_done else self.epoch_step
        bar = Text(epoch).append_text(progress_bar(done, self.steps_per_epoch, width - len(epoch)))
        step = f"{self.step:,}/{self.total_steps:,}" if self.total_steps else f"{self.step:,}"
        speed = f"{self.images_per_sec:,.0f} img/s" if self.images_per_sec else "– img/s"
        eta = format_duration(self.eta) if self.state is RunState.TRAINING else "–"
        lr = "–" if self.lr_g is None else f"G {self.lr_g:.2g}  D {self.lr_d:.2g}"
        pending = Text("")
        if self.pending is not None:
            pending = Text(f"→ G {self.pending[0]:.2g}  D {self.pending[1]:.2g} at epoch end", style="yellow")
        pause = "at every epoch end" if self.auto_pause else "off"

        if height < FULL_HEIGHT:  # 80x24 and other short terminals
            gpu = [Text(f"GPU {gpu_text(self.gpu, width - 4)}")] if self.gpu else []
            return [state, bar, Text(f"{step} · {speed} · ETA {eta}"), Text(f"lr {lr} ").append_text(pending), *gpu,
                    Text(f"{self.device} · auto-pause {pause}", style="dim"), Text(self.run_dir or "–", style="dim")]

        rows = [state, bar]
        gpu = [("gpu", gpu_text(self.gpu, width - 7))] if self.gpu else []
        for label, value in (("step", step), ("speed", speed), ("ETA", eta), ("device", self.device), *gpu,
                             ("lr", Text(lr + "  ").append_text(pending)), ("pause", pause),
                             ("run", self.run_dir or "–")):
            rows.append(Text().append(f"{label:<7}", style="dim").append_text(value if isinstance(value, Text) else Text(value)))
        return rows
