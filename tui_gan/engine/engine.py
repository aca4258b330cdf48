"""The training engine: the PyTorch DCGAN tutorial's loop as a generator of events.

    engine = Engine(config, run_dir)
    for event in engine.run():          # Loading, Started, Progress, Samples, EpochEnd, ...
        ...
    engine.control.pause()               # from any thread; honoured at the next step boundary

The Engine orchestrates: setup, the loop, requests, epoch ends and the finish. The GAN
and its step are gan.py's; what is measured, meter.py's; the divergence guard and the
quality probe, guard.py's and quality.py's. Nothing here knows about a UI.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ..core import events as ev
from ..core.config import TrainConfig
from ..core.control import Control
from ..core.history import HistoryRow
from ..core.rundir import RunDir
from ..data.loader import Dataset, StreamedDataset, channels_known_in_advance
from ..pictures.grids import save_grid
from .checkpoint import CheckpointWriter, restore_run, run_state
from .devices import check_amp, describe_failure, resolve_device
from .gan import Gan
from .gpu_monitor import NO_MONITOR, GpuMonitor, NoMonitor
from .guard import Guard
from .lockstep import Lockstep
from .meter import Meter
from .quality import QualityProbe, measure_quality
from .serving import serve_requests
from .setup import StoppedDuringSetup, load_data_and_gan, started_event
from .world import World, lost_peer_message


class Engine:
    """One training run. ``run()`` is a generator; drive it from one thread only."""

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        *,
        explicit: frozenset[str] | set[str] = frozenset(),
        resume: dict[str, Any] | None = None,
        before_step: Callable[[int], None] | None = None,
        control: Control | None = None,
    ) -> None:
        """``explicit``: the settings the user gave (a preset does not override them).
        ``resume``: a loaded checkpoint to continue. ``before_step(step)`` is called before
        every training step, with the number of steps done (the benchmark's clock).
        ``control``: the requests' channel, when a service made it before the engine."""
        self.config = config
        self.run_dir = Path(run_dir)
        self.paths = RunDir(self.run_dir)
        self.explicit = set(explicit)
        self.resume_state = resume
        self.before_step = before_step
        self.control = control or Control()
        self.guard = Guard()
        self.quality = QualityProbe(config)
        self.world = World.single()
        """This process among the run's (world.py); joined in setup when torchrun started it."""
        self.lockstep = Lockstep(self.world, self.control)
        self.auto_pause_shown = False
        """Whether the viewers were last told the run pauses at epoch ends (AutoPauseSet)."""
        # Built by run()'s setup, in this order (None until then):
        self.device: torch.device | None = None
        self.data: Dataset | StreamedDataset | None = None
        self.gan: Gan | None = None
        self.meter: Meter | None = None
        self.step = self.epoch = self.batch_in_epoch = self.steps_per_epoch = 0
        self.history: list[HistoryRow] = []
        self.elapsed_base = 0.0
        """Seconds trained before this process (from the checkpoint when resuming)."""
        self.last_samples: torch.Tensor | None = None
        self.live_samples: torch.Tensor | None = None
        """The live generator's, for the guard (the same as last_samples unless --ema shows the average)."""
        self._batches: Iterator[torch.Tensor] | None = None
        self.checkpoints = CheckpointWriter()
        self.gpu: NoMonitor = NO_MONITOR  # the GPU at a glance, read on its own thread (gpu_monitor.py)

    # ================================================================== setup

    def run(self) -> Iterator[Any]:
        """Set up, then train, yielding events until the run finishes, stops or fails.

        Raises UserError during setup for input that cannot be used (bad data, device...).
        """
        try:
            yield from self._setup()
        except StoppedDuringSetup as stop:
            yield ev.Finished(str(stop), self.step, self.epoch, 0.0, 0.0, None, None)
            return
        yield started_event(self)
        ended = False
        try:
            yield from self._train()
            ended = True
        except Exception as exc:  # noqa: BLE001 - reported as an event, state saved first
            yield from self._fail(exc)
        finally:
            self.gpu.close()
            self.meter.close()
            self.world.close(together=ended)

    def _setup(self) -> Iterator[Any]:
        cfg = self.config
        yield ev.Loading("choosing a device")
        self.device = resolve_device(cfg.device)
        self.world, self.device = World.join(self.device)
        self.lockstep = Lockstep(self.world, self.control)
        if self.resume_state is None:
            cfg.apply_preset(self.device.type, self.explicit)
        cfg.validate()
        self.world.check_batch(cfg.batch_size)
        if cfg.amp:
            check_amp(self.device)
        if cfg.channels is None:
            cfg.channels = channels_known_in_advance(cfg.data)
        main = self.world.is_main  # only rank 0 writes the run directory
        if main:
            self.paths.create(cfg.to_toml())
        # several processes stop together at a step, so not here: the first exchange does it
        stop_reason = (lambda: None) if self.world.distributed else (lambda: self.control.stop_reason)
        self.data, self.gan, notes = yield from load_data_and_gan(
            cfg, self.device, stop_reason, self.paths.config if main else None, self.world)
        for note in notes:
            yield ev.EngineWarning(note)
        self.steps_per_epoch = len(self.data) // cfg.batch_size
        if self.resume_state is not None:
            yield from self._restore(self.resume_state)
        self.world.broadcast_modules(self.gan.modules())  # every rank starts from rank 0's
        self.initial_lrs = self.gan.lrs
        """What reset_lr goes back to: set_lr changes config.lr_g and lr_d (checkpoints keep the latest)."""
        self.meter = Meter(cfg, self.device, self.history, self.elapsed_base, self.paths.metrics if main else os.devnull)
        self.gpu = GpuMonitor.start_for(self.device, main)

    def _restore(self, state: dict[str, Any]) -> Iterator[Any]:
        """Continue exactly where a checkpoint left off (learning rates given as flags
        replace the ones that were waiting for an epoch's end)."""
        restored = restore_run(self.gan, state, self.steps_per_epoch, not {"lr_g", "lr_d"} & self.explicit)
        self.step, self.epoch, self.batch_in_epoch = restored.step, restored.epoch, restored.batch_in_epoch
        self.history, self.elapsed_base = restored.history, restored.elapsed_s
        if "path" in state:
            self.checkpoints.loaded(self.step, state["path"])
        if restored.warning:
            yield ev.EngineWarning(restored.warning)

    @property
    def total_steps(self) -> int:
        total = self.config.epochs * self.steps_per_epoch
        if self.config.max_steps is not None:
            total = min(total, self.config.max_steps)
        return total

    # ================================================================== the loop

    def _train(self) -> Iterator[Any]:
        self.meter.restart_clocks()
        self.guard.start(self.step, self.gan.modules(), self.data.subset(64, self.config.seed))
        try:
            yield from self._steps()
        finally:
            self._close_batches()

    def _close_batches(self) -> None:
        """End the epoch's batch stream (and a streaming DataLoader's workers with it)."""
        if self._batches is not None:
            self._batches.close()
            self._batches = None

    def _steps(self) -> Iterator[Any]:
        cfg, gan, meter, main = self.config, self.gan, self.meter, self.world.is_main
        if main:
            yield self._samples_event()
        if self.step == 0 and main:  # where the untrained generator starts, for comparison
            yield from self._measure_quality()
        while True:
            yield from self._serve_requests()
            if self.lockstep.stop_reason is not None:  # as every rank agreed (lockstep.py)
                reason = self.lockstep.stop_reason
                break
            if cfg.max_steps is not None and self.step >= cfg.max_steps:
                reason = "max_steps"
                break
            if self.epoch >= cfg.epochs:
                reason = "completed"
                break
            if self._batches is None:
                self._batches = self.data.epoch_batches(cfg.seed, self.epoch, self.batch_in_epoch, cfg.batch_size,
                                                        self.world.rows(cfg.batch_size))
            real = next(self._batches)
            if self.before_step is not None:
                self.before_step(self.step)
            meter.add(gan.train_step(real))
            self.step += 1
            self.batch_in_epoch += 1
            if self.batch_in_epoch >= self.steps_per_epoch:
                self._close_batches()
                yield from self._end_epoch()
            now = time.perf_counter()
            if main and meter.progress_due(now):  # the others' numbers are rank 0's (world.py)
                yield self._progress(now)
                yield from self.gpu.readings()
                yield from self._guard()
            if main and meter.samples_due(now):
                yield self._samples_event()
        self._close_batches()
        yield from self._finish(reason)

    def _progress(self, now: float, force_row: bool = False) -> ev.Progress:
        """Read the device accumulators (the one sync) and report averages."""
        return self.meter.progress(now, self, self.gan.lrs, force_row)

    def _guard(self) -> Iterator[Any]:
        """After a progress read: the guard looks at its averages (see guard.py)."""
        means = self.meter.last_means
        if means is None or self.lockstep.resync_pending:  # a rollback waits for the others to take it
            return
        warning, diverged = self.guard.inspect(self.step, means, self.gan.modules(), self.gan.lrs)
        for text in (warning, self.guard.inspect_samples(self.step, self.live_samples)):
            if text:
                yield ev.EngineWarning(text)
        if diverged:
            self.control.pause("diverged")
            self.lockstep.resync_pending = self.world.distributed  # the other ranks take the restored state

    def _measure_quality(self) -> Iterator[Any]:
        yield from measure_quality(self)  # quality.py: the row, the event, best.pt, warnings

    # ================================================================== requests

    def _serve_requests(self) -> Iterator[Any]:
        yield from serve_requests(self)  # serving.py: pausing and the one-shot requests

    # ================================================================== samples, epochs, the end

    def _refresh_samples(self) -> torch.Tensor:
        start = time.perf_counter()
        gan = self.gan
        self.last_samples = gan.samples()
        self.live_samples = self.last_samples if gan.shown == "live" else gan.samples(gan.netG)
        self.meter.off_the_clock(start)
        self.meter.samples_drawn()
        return self.last_samples

    def _saved_samples(self) -> torch.Tensor:
        """For the saved grids, after _refresh_samples: the measured generator's (see Gan)."""
        gan = self.gan
        return self.last_samples if gan.measured_generator is gan.shown_generator else gan.samples(gan.measured_generator)

    def _samples_event(self, samples: torch.Tensor | None = None) -> ev.Samples:
        """``samples`` (default: fresh ones) as the event that says whose they are."""
        samples = self._refresh_samples() if samples is None else samples
        return ev.Samples(self.step, self.epoch, samples, self.gan.shown)

    def _end_epoch(self) -> Iterator[Any]:
        self.epoch += 1
        self.batch_in_epoch = 0
        applied = self.gan.apply_pending_lrs()
        if applied is not None:
            yield applied
        if not self.world.is_main:
            return
        yield self._progress(time.perf_counter(), force_row=True)
        yield from self._guard()  # the steps since the last progress read are checked too
        yield from self._measure_quality()
        shown, saved = self._refresh_samples(), self._saved_samples()
        sample_path = save_grid(saved, self.paths.epoch_grid(self.epoch))
        yield self._samples_event(shown)
        ckpt = self.save(self.paths.last)
        yield ev.EpochEnd(self.epoch, self.step, str(sample_path), str(ckpt), saved)
        if self.control.pause_at_epoch_end and self.epoch < self.config.epochs:
            self.control.pause("epoch end")
        self.meter.skip_to_now()  # saving is not training: keep it out of img/s

    def _snapshot(self) -> Iterator[Any]:
        shown = self._refresh_samples()
        sample_path = save_grid(self._saved_samples(), self.paths.snapshot_grid(self.step))
        path = self.save(self.paths.snapshot(self.step))
        yield self._samples_event(shown)
        yield ev.SnapshotSaved(self.step, str(path), str(sample_path))

    def _finish(self, reason: str) -> Iterator[Any]:
        if not self.world.is_main:
            yield ev.Finished(reason, self.step, self.epoch, 0.0, 0.0, None, None)
            return
        yield self._progress(time.perf_counter(), force_row=True)
        shown = self._refresh_samples()
        sample_path = save_grid(self._saved_samples(), self.paths.final_grid(self.step))
        yield self._samples_event(shown)
        ckpt = self.save(self.paths.last)
        meter = self.meter
        yield ev.Finished(reason, self.step, self.epoch, meter.train_time, meter.session_images_per_sec(),
                          str(ckpt), str(sample_path))

    def _fail(self, exc: Exception) -> Iterator[Any]:
        message = describe_failure(exc, self.device)
        ckpt: str | None = None
        if self.world.distributed:  # a step may be half done across the ranks: keep the last checkpoint
            yield ev.Error(lost_peer_message(exc, message), str(self.paths.last) if self.paths.last.exists() else None)
            return
        try:
            ckpt = str(self.save(self.paths.last))
        except Exception:  # noqa: BLE001 - nothing more can be saved
            ckpt = None
        yield ev.Error(message, ckpt)

    # ================================================================== checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly: tensors and plain data only."""
        elapsed = self.meter.train_time if self.meter is not None else self.elapsed_base
        return run_state(self.gan, self.config, (self.step, self.epoch, self.batch_in_epoch), self.history, elapsed)

    def save(self, path: Path) -> Path:
        """Write a checkpoint unless this exact file already holds the current step; never
        one with non-finite weights (the guard's last good state goes in instead)."""
        def state() -> dict[str, Any]:
            self.guard.make_savable(self.gan.modules())
            return self.state_dict()

        return self.checkpoints.save(path, self.step, state)
