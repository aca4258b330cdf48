"""Events the engine yields: the engine -> viewer half of the contract (control.py is the
other). Plain dataclasses: no Textual, no torch required to read them.

The headless log and the Textual app consume the same stream; core/report.py turns each
event into text for both. Images travel as uint8 (N, C, H, W) arrays on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .history import HistoryRow


@dataclass
class Loading:
    """Setup progress before training starts (data generation or decoding)."""

    message: str
    done: int = 0
    total: int = 0


@dataclass
class Started:
    device: str
    preset: str
    config: dict[str, Any]
    dataset: str
    dataset_size: int
    steps_per_epoch: int
    total_steps: int
    run_dir: str
    step: int
    epoch: int
    resumed_from: str | None
    history: list[HistoryRow]
    lr_g: float
    lr_d: float
    skipped: list[str] = field(default_factory=list)
    progression: list[tuple[int, Any]] = field(default_factory=list)
    """A resumed run's earlier epoch-end samples: (epoch, uint8 (N, C, H, W) numpy)."""
    precision: str = "fp32"
    """The training step's precision: 'bf16' (autocast) or 'fp32'."""
    precision_why: str = ""
    """Why: '--amp', '--no-amp', or 'auto: ' and what the device has ('AMX', ...)."""


@dataclass
class Progress:
    """Averages over the last progress interval (one device sync)."""

    step: int
    epoch: int
    epoch_step: int
    steps_per_epoch: int
    total_steps: int
    loss_d: float
    loss_g: float
    d_x: float
    d_g_z1: float
    d_g_z2: float
    images_per_sec: float
    eta_s: float | None
    elapsed_s: float
    lr_g: float
    lr_d: float
    row: HistoryRow | None = None
    """A new row of the metric history, if one was completed in this interval."""


@dataclass
class Quality:
    """A quality measurement of the generator (see engine/quality.py)."""

    step: int
    epoch: int
    swd: float
    """Sliced Wasserstein distance ×1000 to the fixed real subset, mean over pyramid levels."""
    diversity: float
    """Mean pairwise distance of generated images over that of real ones (≈1 healthy)."""
    swd_levels: list[float]
    images: int
    seconds: float
    best: str | None = None
    """checkpoints/best.pt's path when this measurement is the run's best so far (it was saved)."""
    class_swd: list[float] | None = None
    """A conditional run's: each class's SWD against its own real images, by class index
    (NaN: too few of its images in the real subset)."""

    def history_row(self) -> HistoryRow:
        """The measurement as a row of the metric history, as viewers draw it (the engine's
        own row also has the learning rates and the time; viewers read the step and values)."""
        nan = math.nan
        return HistoryRow.quality(self.step, self.epoch, nan, nan, nan, self.swd, self.diversity)


@dataclass
class DeviceStatus:
    """The GPU at a glance (CUDA only), read on a thread of its own every few seconds and
    passed on with the progress (engine/gpu_monitor.py)."""

    name: str
    memory_used: int
    """Bytes in use on the whole device, every process's (as nvidia-smi counts them)."""
    memory_total: int
    memory_reserved: int
    """Bytes this run's caching allocator holds."""
    utilisation: float | None = None
    """Percent of the last sample period in which a kernel ran (NVML); None: unknown."""
    note: str = ""
    """Why utilisation is unknown, when it is."""


@dataclass
class Interpolation:
    """Latent walks rendered at ``step``: uint8 (frames, walks, C, H, W) on the CPU."""

    step: int
    epoch: int
    frames: Any
    classes: list[int] | None = None
    """A conditional run's: the class of each walk; None for the tutorial's GAN."""


@dataclass
class Samples:
    """The fixed-noise batch as uint8 (N, C, H, W) on the CPU (a torch tensor)."""

    step: int
    epoch: int
    images: Any
    generator: str = "live"
    """Whose samples: 'live', or 'average' (the generator's moving average, --ema)."""
    classes: list[int] | None = None
    """A conditional run's rows: the class of each row of the samples (indices into the
    config's class_names), each row the same number of samples; None for the tutorial's GAN."""


@dataclass
class EpochEnd:
    epoch: int  # epochs completed
    step: int
    sample_path: str
    checkpoint_path: str
    images: Any = None
    """The epoch's fixed-noise samples, uint8 (N, C, H, W) on the CPU: the progression."""


@dataclass
class SnapshotSaved:
    step: int
    checkpoint_path: str
    sample_path: str


@dataclass
class Exported:
    step: int
    path: str


@dataclass
class LrPending:
    lr_g: float
    lr_d: float


@dataclass
class LrApplied:
    lr_g: float
    lr_d: float


@dataclass
class Paused:
    step: int
    reason: str = "requested"


@dataclass
class Resumed:
    step: int


@dataclass
class EngineWarning:
    message: str


@dataclass
class Finished:
    reason: str  # "completed", "max_steps", "stopped", "signal SIGTERM", ...
    step: int
    epoch: int
    elapsed_s: float
    images_per_sec: float
    checkpoint_path: str | None
    """The final checkpoint; when it could not be written, the newest complete one (None: none)."""
    sample_path: str | None
    save_failed: str = ""
    """Why the final checkpoint could not be written ('no space left on device'); '' when it was."""
    checkpoint_step: int | None = None
    """The step ``checkpoint_path`` holds."""


@dataclass
class NewestCheckpoint:
    """The run's newest complete checkpoint: one just written (last.pt, best.pt, a snapshot)
    or, in a resumed run, the one it continues from. No log line (EpochEnd, SnapshotSaved and
    Quality say what was saved): viewers show its age, which grows while saves fail."""

    step: int
    path: str
    wall_time: float
    """When it was written (time.time())."""


@dataclass
class WritesFailing:
    """The run directory stopped taking writes (a full disk, a quota, a filesystem turned
    read-only or failing): the first failed write of an outage, one event per outage
    (WritesRecovered ends it). Training goes on; checkpoints and grids are tried again at
    their next save, metrics rows and TensorBoard records are kept until they can be written."""

    path: str
    """The file that could not be written."""
    reason: str
    """Why, in words: 'no space left on device'."""
    what: str
    """What was not written: 'last.pt of step 32', 'metrics rows', 'samples/epoch-0002.png'..."""
    wall_time: float


@dataclass
class WritesRecovered:
    """A write succeeded again, of every kind that had failed: the outage is over."""

    path: str
    what: str
    """What this write saved: 'last.pt of step 48'."""
    seconds: float
    """How long writes failed."""
    late: list[str] = field(default_factory=list)
    """What was kept and has been written now: '14 metrics rows'."""
    lost: list[str] = field(default_factory=list)
    """What was not written and never will be: 'samples/epoch-0002.png', 'best.pt of step 32'."""


@dataclass
class Error:
    """Training failed; what could be saved was saved."""

    message: str
    checkpoint_path: str | None


@dataclass
class AutoPauseSet:
    """The run now pauses (or no longer pauses) at every epoch's end."""

    on: bool


@dataclass
class Attached:
    """What a viewer that connects to a training service mid-run needs, at once: the run
    as a resumed run's Started would describe it now (history so far, the epoch-end samples,
    the current learning rates), the event log's recent lines, and the latest state. The
    live events follow it. Never yielded by the engine: the service (core/runview.py's RunView.attached)
    builds it."""

    started: Started | None
    """None while the service is still loading (the Loading events follow)."""
    log: list[tuple[str, str]]
    """The event log's recent lines: (text, tone name of core.report.Tone)."""
    loading: Loading | None = None
    progress: Progress | None = None
    samples: Samples | None = None
    paused: str | None = None
    """The pause's reason when the run is paused, else None."""
    lr_pending: LrPending | None = None
    auto_pause: bool = False
    viewers: int = 1
    """Viewers attached, this one included."""
    device_status: DeviceStatus | None = None
    last_checkpoint: NewestCheckpoint | None = None
    writes_failing: WritesFailing | None = None
    """The outage in progress, if writes fail now."""


@dataclass
class Disconnected:
    """A viewer's connection to its training service ended before the run did. Never
    yielded by the engine: the client (service/client.py) ends its stream with it."""

    message: str
    service_running: bool
    """Whether the service still trains the run (this viewer was dropped, say)."""
