"""What the engine measures while it trains: the per-step statistics summed on the device,
the training clock, the metric history (and metrics.csv), and throughput.

The one place the training loop reads the device: ``read`` copies the sums of the last
progress interval (0.25 s by default) to the host, a few times a second instead of the
tutorial's three ``.item()`` syncs per step.

On an asynchronous device (CUDA, MPS) the host runs ahead of the steps it queues, so a clock
read on the host is early: where a stretch ends the training (a read) or starts time off the
clock (samples, measurements, checkpoints), the device is waited for first, so that the steps
still queued count as training. Never per step: once per read or stretch off the clock.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core import events as ev
from ..core.config import TrainConfig
from ..core.history import HistoryRow
from ..core.outage import WriteWatch
from .devices import asynchronous, synchronize
from .metrics import MetricsCsv, RowAggregator, Throughput
from .position import Position

#: loss_D, loss_G, D(x), D(G(z1)), D(G(z2)): the statistics a step returns (see Gan.train_step).
STAT_COUNT = 5


@dataclass(frozen=True)
class Reading:
    """One read of the accumulators: averages over the steps since the last read (or the
    newest history row's when there were none), their images per second, and a history row
    if one closed."""

    means: list[float]
    images_per_sec: float
    row: HistoryRow | None


class Meter:
    """Device accumulators, clocks, history rows and throughput for one run."""

    def __init__(self, config: TrainConfig, device: torch.device, history: list[HistoryRow],
                 elapsed_s: float, csv_path: Path | None, writes: WriteWatch | None = None) -> None:
        """``csv_path`` None: no metrics.csv (a rank other than 0); ``writes``: the run's
        WriteWatch, which the file's writes go through."""
        self.config = config
        self.device = device
        """Where the steps run: on an asynchronous one the clock waits for them (module docstring)."""
        self.history = history
        self.csv = MetricsCsv(csv_path, history, writes)
        self._acc = torch.zeros(STAT_COUNT, device=device)
        self._acc_steps = 0
        self._rows = RowAggregator(config.log_interval)
        self._throughput = Throughput()
        self.train_time = elapsed_s
        """Seconds of training in the whole run (resumed runs continue the count)."""
        self._session_images = 0
        self._session_time = 0.0
        self.last_means: list[float] | None = None
        """The averages of the newest read that had steps, until the next read."""
        now = time.perf_counter()
        self._last_progress = now
        self._last_samples = now
        self._checkpoint_at = elapsed_s
        """The run's training seconds when last.pt was last written (or loaded)."""

    # ----------------------------------------------------------------- per step

    def add(self, stats: torch.Tensor) -> None:
        """A step's statistics, summed on the device (no sync)."""
        self._acc += stats
        self._acc_steps += 1

    def progress_due(self, now: float) -> bool:
        return now - self._last_progress >= self.config.progress_interval

    def samples_due(self, now: float) -> bool:
        return now - self._last_samples >= self.config.sample_interval

    def checkpoint_due(self, now: float) -> bool:
        """--checkpoint-every: whether that many minutes of training (not pauses, not saving
        or sampling) have passed since last.pt was last written."""
        every = self.config.checkpoint_every
        return every > 0 and self.train_seconds(now) - self._checkpoint_at >= every * 60

    # ----------------------------------------------------------------- clocks

    def restart_clocks(self) -> None:
        """After a pause: the time spent paused is not training."""
        now = time.perf_counter()
        self._last_progress = now
        self._last_samples = now

    def start_off_the_clock(self) -> float:
        """The start of a stretch off the clock (for ``off_the_clock``), taken once the
        device has run the training steps queued on it: the stretch's first read of the
        device would wait for them, and that wait is training."""
        synchronize(self.device)
        return time.perf_counter()

    def off_the_clock(self, started: float) -> float:
        """Keep the seconds since ``started`` (from ``start_off_the_clock``) out of img/s:
        drawing samples, measuring and rendering walks are not training. Returns them."""
        seconds = time.perf_counter() - started
        self._last_progress += seconds
        return seconds

    def samples_drawn(self) -> None:
        self._last_samples = time.perf_counter()

    def train_seconds(self, now: float) -> float:
        """Seconds of training in the whole run up to ``now``: ``train_time`` (up to the last
        read) and the time since then that was not put off the clock."""
        return self.train_time + max(0.0, now - self._last_progress)

    def checkpoint_written(self) -> None:
        """last.pt was written now: checkpoint_due counts from here."""
        self._checkpoint_at = self.train_seconds(time.perf_counter())

    def skip_to_now(self) -> None:
        """Leave the time since the last read out of img/s (saving a checkpoint, say)."""
        self._last_progress = time.perf_counter()

    # ----------------------------------------------------------------- reads

    def read(self, now: float, step: int, epoch: int, lrs: tuple[float, float], force_row: bool = False) -> Reading:
        """Read the device accumulators (the one sync) and average them; close a history
        row when one is due (or pending, with ``force_row``). ``now``: the time the caller
        took before; on an asynchronous device the interval ends when its steps are done
        instead (the read waits for them), so that time off the clock after it (an epoch's
        end, a pause) leaves out none of them."""
        steps = self._acc_steps
        self.last_means = None
        if steps:
            means = (self._acc / steps).tolist()
            self._acc.zero_()
            self._acc_steps = 0
            self.last_means = means
            if asynchronous(self.device):
                synchronize(self.device)  # the copy above waited already: this only makes it explicit
                now = time.perf_counter()
        else:
            losses = [row for row in self.history if row.is_training]
            means = list(losses[-1][2:7]) if losses else [math.nan] * STAT_COUNT
        dt = now - self._last_progress
        self._last_progress = now
        images = steps * self.config.batch_size
        self.train_time += dt
        self._session_time += dt
        self._session_images += images
        self._throughput.update(steps, dt)
        row = None
        if steps:
            self._rows.add(means, steps, images, dt)
        if self._rows.due() or (force_row and self._rows.pending()):
            row = self._rows.take(step, epoch, *lrs, self.train_time)
            self.append(row)
        return Reading(means, images / dt if dt > 0 and steps else 0.0, row)

    def progress(self, now: float, position: Position, lrs: tuple[float, float], force_row: bool = False) -> ev.Progress:
        """Read the accumulators (the one sync) into a progress report at ``position``."""
        reading = self.read(now, position.step, position.epoch, lrs, force_row)
        loss_d, loss_g, d_x, d_g_z1, d_g_z2 = reading.means
        return ev.Progress(
            step=position.step, epoch=position.epoch, epoch_step=position.batch_in_epoch,
            steps_per_epoch=position.steps_per_epoch, total_steps=position.total_steps,
            loss_d=loss_d, loss_g=loss_g, d_x=d_x, d_g_z1=d_g_z1, d_g_z2=d_g_z2,
            images_per_sec=reading.images_per_sec,
            eta_s=self._throughput.eta(max(0, position.total_steps - position.step)),
            elapsed_s=self.train_time, lr_g=lrs[0], lr_d=lrs[1], row=reading.row,
        )

    def session_images_per_sec(self) -> float:
        """Images per second of training since this process started the run."""
        return self._session_images / self._session_time if self._session_time > 0 else 0.0

    # ----------------------------------------------------------------- history

    def append(self, row: HistoryRow) -> None:
        self.history.append(row)
        self.csv.append(row)

    def best_swd(self) -> float:
        """The lowest SWD measured in this run so far (inf before the first measurement)."""
        return min((r.swd for r in self.history if math.isfinite(r.swd)), default=math.inf)

    def best_diversity(self) -> float:
        return max((r.diversity for r in self.history if math.isfinite(r.diversity)), default=0.0)

    def close(self) -> None:
        self.csv.close()
