"""The training engine: the PyTorch DCGAN tutorial's loop as a generator of events.

    engine = Engine(config, run_dir)
    for event in engine.run():          # Loading, Started, Progress, Samples, EpochEnd, ...
        ...
    engine.control.pause()               # from any thread; honoured at the next step boundary

Read top to bottom: setup, the loop, the epoch's end, the finish. The GAN and its step are
gan.py's; what is measured, meter.py's; what the run shows and keeps (samples, grids,
checkpoints, the quality measurement), outputs.py's, which the loop and request serving
(serving.py) share; the divergence guard, guard.py's. Nothing here knows about a UI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from ..core import events as ev
from ..core.config import TrainConfig
from ..core.contract import EngineEvent
from ..core.control import Control
from ..core.history import HistoryRow
from ..core.rundir import RunDir
from ..data.labelled import class_names_in_advance
from ..data.loader import Dataset, StreamedDataset, channels_known_in_advance
from .checkpoint import CheckpointWriter, restore_run
from .devices import check_amp, describe_failure, resolve_device
from .gan import Gan
from .gpu_monitor import NO_MONITOR, GpuMonitor, NoMonitor
from .guard import Guard
from .meter import Meter
from .outputs import RunOutputs
from .position import Position
from .quality import QualityProbe
from .serving import Serving
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
        self.checkpoints = CheckpointWriter(self.control.writes)  # every file of the run goes through its WriteWatch
        self.world = World.single()
        """This process among the run's (world.py); joined in setup when torchrun started it."""
        self.at = Position()
        self.history: list[HistoryRow] = []
        self.elapsed_base = 0.0
        """Seconds trained before this process (from the checkpoint when resuming)."""
        # Built by run()'s setup, in this order (None until then):
        self.device: torch.device | None = None
        self.data: Dataset | StreamedDataset | None = None
        self.gan: Gan | None = None
        self.meter: Meter | None = None
        self.outputs: RunOutputs | None = None
        self.serving: Serving | None = None
        self.gpu: NoMonitor = NO_MONITOR  # the GPU at a glance, read on its own thread (gpu_monitor.py)
        self._batches: Iterator[Any] | None = None

    @property
    def step(self) -> int:
        return self.at.step

    @property
    def epoch(self) -> int:
        return self.at.epoch

    # ================================================================== setup

    def run(self) -> Iterator[EngineEvent]:
        """Set up, then train, yielding events until the run finishes, stops or fails.

        Raises UserError during setup for input that cannot be used (bad data, device...).
        """
        try:
            yield from self._setup()
        except StoppedDuringSetup as stop:
            yield ev.Finished(str(stop), self.at.step, self.at.epoch, 0.0, 0.0, None, None)
            return
        yield started_event(self)
        ended = False
        try:
            yield from self._train()
            ended = True
        except Exception as exc:  # noqa: BLE001 - reported as an event, state saved first
            yield from self._fail(exc)
        finally:
            self.checkpoints.wait()  # a background write of last.pt finishes before the run ends
            self.gpu.close()
            self.meter.close()
            self.world.close(together=ended)

    def _epoch_batches(self) -> Iterator[Any]:
        """The batches of this epoch from the current one on (this process's rows of each):
        images, or (images, classes) in a conditional run."""
        cfg, at, rows = self.config, self.at, self.world.rows(self.config.batch_size)
        batches = self.data.epoch_labelled_batches if cfg.conditional else self.data.epoch_batches
        return batches(cfg.seed, at.epoch, at.batch_in_epoch, cfg.batch_size, rows)

    def _setup(self) -> Iterator[EngineEvent]:
        cfg = self.config
        yield ev.Loading("choosing a device")
        self.device = resolve_device(cfg.device)
        self.world, self.device = World.join(self.device)
        if self.resume_state is None:
            cfg.apply_preset(self.device.type, self.explicit)
        cfg.validate()
        self.world.check_batch(cfg.batch_size)
        if cfg.amp:
            check_amp(self.device)
        if cfg.channels is None:
            cfg.channels = channels_known_in_advance(cfg.data)
        if cfg.conditional and cfg.class_names is None:  # known before the images load: the nets need not wait
            cfg.class_names = class_names_in_advance(cfg)  # (None: a dataset's own; a folder without two says so)
        main = self.world.is_main  # only rank 0 writes the run directory
        if main:
            self.paths.create(cfg.to_toml())
        # several processes stop together at a step, so not here: the first exchange does it
        stop_reason = (lambda: None) if self.world.distributed else (lambda: self.control.stop_reason)
        self.data, self.gan, notes = yield from load_data_and_gan(
            cfg, self.device, stop_reason, self.paths.config if main else None, self.world)
        for note in notes:
            yield ev.EngineWarning(note)
        self.at.steps_per_epoch = len(self.data) // cfg.batch_size
        self.at.total_steps = cfg.epochs * self.at.steps_per_epoch
        if cfg.max_steps is not None:
            self.at.total_steps = min(self.at.total_steps, cfg.max_steps)
        if self.resume_state is not None:
            yield from self._restore(self.resume_state)
        self.world.broadcast_modules(self.gan.modules())  # every rank starts from rank 0's
        self.meter = Meter(cfg, self.device, self.history, self.elapsed_base, self.paths.metrics if main else None,
                           self.control.writes)
        self.gpu = GpuMonitor.start_for(self.device, main)
        self.outputs = RunOutputs(config=cfg, gan=self.gan, data=self.data, device=self.device, at=self.at,
                                  meter=self.meter, paths=self.paths, checkpoints=self.checkpoints,
                                  guard=self.guard, quality=self.quality)
        self.serving = Serving(control=self.control, world=self.world, at=self.at, gan=self.gan, guard=self.guard,
                               outputs=self.outputs, meter=self.meter, gpu=self.gpu, initial_lrs=self.gan.lrs)

    def _restore(self, state: dict[str, Any]) -> Iterator[EngineEvent]:
        """Continue exactly where a checkpoint left off (learning rates given as flags
        replace the ones that were waiting for an epoch's end)."""
        restored = restore_run(self.gan, state, self.at.steps_per_epoch, not {"lr_g", "lr_d"} & self.explicit)
        self.at.step, self.at.epoch, self.at.batch_in_epoch = restored.step, restored.epoch, restored.batch_in_epoch
        self.history, self.elapsed_base = restored.history, restored.elapsed_s
        if "path" in state:
            self.checkpoints.loaded(self.at.step, state["path"])
        if restored.warning:
            yield ev.EngineWarning(restored.warning)

    # ================================================================== the loop

    def _train(self) -> Iterator[EngineEvent]:
        cfg, gan, meter, out, at, main = self.config, self.gan, self.meter, self.outputs, self.at, self.world.is_main
        meter.restart_clocks()
        self.guard.start(at.step, gan.modules(), self.data.subset(64, cfg.seed))
        if main:
            yield out.samples_event()
            if at.step == 0:  # where the untrained generator starts, for comparison
                yield from out.measure()
        try:
            while True:
                # (1) Requests, at the step boundary: pause (waiting here), stop, learning rates, snapshots...
                yield from self.serving.serve()
                # (2) The end: a stop every rank agreed on (lockstep.py), max_steps, the last epoch
                reason = self._reason_to_end()
                if reason is not None:
                    break
                # (3) One step of the tutorial's loop on the next batch (Gan.train_step)
                if self._batches is None:
                    self._batches = self._epoch_batches()
                real = next(self._batches)
                if self.before_step is not None:
                    self.before_step(at.step)
                meter.add(gan.train_step(*real) if cfg.conditional else gan.train_step(real))
                # (4) The epoch's end, after its last batch
                if at.advance():
                    self._close_batches()
                    yield from self._end_epoch()
                # (5) Reports on their clocks: progress (the one device sync), the GPU, the guard, samples
                now = time.perf_counter()
                if main and meter.progress_due(now):  # the others' numbers are rank 0's (world.py)
                    yield out.progress(now)
                    yield from out.news()  # writes that failed (a full disk) or work again
                    yield from self.gpu.readings()
                    yield from self._guard()
                if main and meter.samples_due(now):
                    yield out.samples_event()
                # (6) last.pt every --checkpoint-every minutes of training, written in the background
                if main and meter.checkpoint_due(now):
                    out.save_last_in_background()
        finally:
            self._close_batches()
        yield from self._finish(reason)

    def _reason_to_end(self) -> str | None:
        if self.serving.stop_reason is not None:
            return self.serving.stop_reason
        if self.config.max_steps is not None and self.at.step >= self.config.max_steps:
            return "max_steps"
        if self.at.epoch >= self.config.epochs:
            return "completed"
        return None

    def _close_batches(self) -> None:
        """End the epoch's batch stream (and a streaming DataLoader's workers with it)."""
        if self._batches is not None:
            self._batches.close()
            self._batches = None

    def _guard(self) -> Iterator[EngineEvent]:
        """After a progress read: the guard looks at its averages (see guard.py)."""
        means = self.meter.last_means
        if means is None or self.serving.resync_pending:  # a rollback waits for the others to take it
            return
        warning, diverged = self.guard.inspect(self.at.step, means, self.gan.modules(), self.gan.lrs)
        for text in (warning, self.guard.inspect_samples(self.at.step, self.outputs.live_samples)):
            if text:
                yield ev.EngineWarning(text)
        if diverged:
            self.control.pause("diverged")
            self.serving.rolled_back()

    # ================================================================== the epoch's end, the finish

    def _end_epoch(self) -> Iterator[EngineEvent]:
        self.at.next_epoch()
        applied = self.gan.apply_pending_lrs()  # the learning rates that waited for it
        if applied is not None:
            yield applied
        if not self.world.is_main:
            return
        yield self.outputs.progress(time.perf_counter(), force_row=True)
        yield from self._guard()  # the steps since the last progress read are checked too
        yield from self.outputs.measure()
        yield from self.outputs.epoch_end()  # its grid and last.pt
        if self.control.pause_at_epoch_end and self.at.epoch < self.config.epochs:
            self.control.pause("epoch end")
        self.meter.skip_to_now()  # saving is not training: keep it out of img/s

    def _finish(self, reason: str) -> Iterator[EngineEvent]:
        if not self.world.is_main:
            yield ev.Finished(reason, self.at.step, self.at.epoch, 0.0, 0.0, None, None)
            return
        yield from self.outputs.finish(reason)

    def _fail(self, exc: Exception) -> Iterator[EngineEvent]:
        message = describe_failure(exc, self.device)
        if self.world.distributed:  # a step may be half done across the ranks: keep the last checkpoint
            yield ev.Error(lost_peer_message(exc, message), str(self.paths.last) if self.paths.last.exists() else None)
            return
        try:
            saved = self.outputs.save(self.paths.last)
        except Exception:  # noqa: BLE001 - nothing more can be saved
            saved = None
        yield ev.Error(message, str(saved) if saved is not None else None)
