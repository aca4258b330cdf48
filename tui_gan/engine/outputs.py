"""What a run shows and keeps besides training: the fixed-noise samples, progress reports,
sample grids, checkpoints (last.pt, best.pt, snapshots), the quality measurement and latent
walks.

The loop (the start, epoch ends, the finish) and request serving (snapshot, export, measure,
latent walks, the shown generator) both call one RunOutputs. It is built from the parts it
uses and reads the run's Position; it knows nothing of the Engine. Only rank 0 calls it: the
other ranks of a multi-process run produce nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..core import events as ev
from ..core.config import TrainConfig
from ..core.contract import EngineEvent
from ..core.history import HistoryRow
from ..core.outage import GRIDS
from ..core.rundir import RunDir
from ..data.loader import Dataset, StreamedDataset
from ..pictures.grids import save_class_grid, save_grid
from .checkpoint import CheckpointWriter, run_state
from .conditional import SAMPLE_COLUMNS
from .gan import Gan
from .guard import Guard
from .interpolation import latent_walk, render_walk
from .meter import Meter
from .position import Position
from .quality import QualityProbe


class RunOutputs:
    """Samples, reports, grids, checkpoints and measurements of one run (module docstring)."""

    def __init__(self, *, config: TrainConfig, gan: Gan, data: Dataset | StreamedDataset, device: torch.device,
                 at: Position, meter: Meter, paths: RunDir, checkpoints: CheckpointWriter, guard: Guard,
                 quality: QualityProbe) -> None:
        self.config, self.gan, self.data, self.device = config, gan, data, device
        self.at = at
        self.meter = meter
        self.paths = paths
        self.checkpoints = checkpoints
        self.guard = guard
        """Its last good state goes into a checkpoint in place of non-finite weights."""
        self.quality = quality
        self.last_samples: torch.Tensor | None = None
        """The newest samples shown (the shown generator's)."""
        self.live_samples: torch.Tensor | None = None
        """The live generator's, for the guard (the same as last_samples unless --ema shows the average)."""
        self.writes = checkpoints.writes
        """Every file written here goes through it: a disk that takes no writes costs files, not the run."""
        self.best_on_disk: float | None = None
        """The SWD best.pt holds while a better measurement could not be saved (None: the best measured)."""

    # ================================================================== samples and reports

    def draw(self) -> torch.Tensor:
        """Fresh samples of the shown generator (and the live one's), kept out of img/s."""
        start = self.meter.start_off_the_clock()
        gan = self.gan
        self.last_samples = gan.samples()
        self.live_samples = self.last_samples if gan.shown == "live" else gan.samples(gan.netG)
        self.meter.off_the_clock(start)
        self.meter.samples_drawn()
        return self.last_samples

    def saved_samples(self) -> torch.Tensor:
        """For the saved grids, after draw(): the measured generator's (see Gan), so that a
        run's grids are one generator's whatever a viewer shows; a conditional run's, the
        rows from its first class on, whichever classes a viewer shows."""
        gan = self.gan
        if gan.measured_generator is gan.shown_generator and gan.first_class == 0:
            return self.last_samples
        return gan.samples(gan.measured_generator, first_class=0)

    def samples_event(self, samples: torch.Tensor | None = None) -> ev.Samples:
        """``samples`` (default: fresh ones) as the event that says whose they are."""
        samples = self.draw() if samples is None else samples
        return ev.Samples(self.at.step, self.at.epoch, samples, self.gan.shown, self.gan.row_classes() or None)

    def progress(self, now: float, force_row: bool = False) -> ev.Progress:
        """Read the device accumulators (the one sync) and report their averages."""
        return self.meter.progress(now, self.at, self.gan.lrs, force_row)

    # ================================================================== what the loop keeps

    def epoch_end(self) -> Iterator[EngineEvent]:
        """The epoch's grid, fresh samples and last.pt."""
        shown, saved = self.draw(), self.saved_samples()
        grid = self.grid(saved, self.paths.epoch_grid(self.at.epoch), first_class=0)
        yield self.samples_event(shown)
        checkpoint = self.save(self.paths.last)
        yield ev.EpochEnd(self.at.epoch, self.at.step, _written(grid), _written(checkpoint), saved)
        yield from self.news()

    def finish(self, reason: str) -> Iterator[EngineEvent]:
        """The last report, grid, samples and last.pt, then Finished (which names the newest
        complete checkpoint instead, and why, when last.pt could not be written)."""
        yield self.progress(time.perf_counter(), force_row=True)
        shown = self.draw()
        grid = self.grid(self.saved_samples(), self.paths.final_grid(self.at.step), first_class=0)
        yield self.samples_event(shown)
        checkpoint = self.save(self.paths.last)
        yield from self.news()
        at, newest, failing = self.at, self.writes.newest, self.writes.failing
        path: str | None = str(checkpoint)
        step: int | None = at.step
        failed = ""
        if checkpoint is None:
            path, step = (newest.path, newest.step) if newest is not None else (None, None)
            failed = failing.reason if failing is not None else "it could not be written"
        yield ev.Finished(reason, at.step, at.epoch, self.meter.train_time, self.meter.session_images_per_sec(),
                          path, _written(grid) or None, failed, step)

    # ================================================================== what viewers ask for

    def snapshot(self) -> Iterator[EngineEvent]:
        """A checkpoint and a grid of this step, beside the run's last.pt."""
        outage = self.writes.failing
        shown = self.draw()
        grid = self.grid(self.saved_samples(), self.paths.snapshot_grid(self.at.step), first_class=0)
        path = self.save(self.paths.snapshot(self.at.step))
        yield self.samples_event(shown)
        if path is not None:
            yield ev.SnapshotSaved(self.at.step, str(path), _written(grid))
        yield from self.news()
        if path is None and outage is not None:  # the outage's warning is old news: answer the request
            yield ev.EngineWarning(f"snapshot of step {self.at.step} not saved: {outage.reason}")

    def export(self) -> Iterator[EngineEvent]:
        """The shown samples as a PNG grid."""
        outage = self.writes.failing
        samples = self.draw()
        path = self.grid(samples, self.paths.export_grid(self.at.step))
        yield self.samples_event(samples)
        if path is not None:
            yield ev.Exported(self.at.step, str(path))
        yield from self.news()
        if path is None and outage is not None:
            yield ev.EngineWarning(f"samples of step {self.at.step} not exported: {outage.reason}")

    def interpolate(self) -> ev.Interpolation:
        """Latent walks of the shown generator, the same walks at every step (interpolation.py)."""
        started = self.meter.start_off_the_clock()
        walk = latent_walk(self.config.nz, self.config.seed + 2)
        rows = self.gan.row_classes()  # a conditional run walks in the classes shown, in turn
        classes = torch.tensor([rows[i % len(rows)] for i in range(walk.shape[1])]) if rows else None
        frames = render_walk(self.gan.shown_generator, walk, self.device, classes)
        self.meter.off_the_clock(started)
        return ev.Interpolation(self.at.step, self.at.epoch, frames, None if classes is None else classes.tolist())

    def measure(self) -> Iterator[EngineEvent]:
        """Measure the generator (its average with --ema) now (quality.py): a history row of
        its own, a Quality event, a checkpoints/best.pt when the SWD beats every earlier
        measurement of the run (a resumed run's included), and a warning when the samples
        collapse. Nothing when the probe is off."""
        n = self.quality.images(len(self.data))
        if not n:
            return
        gan, meter, at = self.gan, self.meter, self.at
        started = meter.start_off_the_clock()
        q = self.quality.measure(gan.measured_generator, self.data, self.device)
        seconds = meter.off_the_clock(started)
        best_swd, best_diversity = meter.best_swd(), meter.best_diversity()
        meter.append(HistoryRow.quality(at.step, at.epoch, gan.lr_g, gan.lr_d, meter.train_time, q.swd, q.diversity))
        best, on_disk = None, best_swd if self.best_on_disk is None else self.best_on_disk
        if q.swd < on_disk:
            started = meter.start_off_the_clock()
            saved = self.save(self.paths.best)
            meter.off_the_clock(started)
            best, self.best_on_disk = (str(saved), None) if saved is not None else (None, on_disk)
        yield ev.Quality(at.step, at.epoch, q.swd, q.diversity, q.swd_levels, n, seconds, best, q.class_swd)
        yield from self.news()
        warning = self.quality.collapse_warning(q.diversity, best_diversity)
        if warning:
            yield ev.EngineWarning(warning)

    # ================================================================== checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly: tensors and plain data only."""
        at = self.at
        return run_state(self.gan, self.config, (at.step, at.epoch, at.batch_in_epoch), self.meter.history,
                         self.meter.train_time)

    def save(self, path: Path) -> Path | None:
        """Write a checkpoint unless this exact file already holds the current step; never
        one with non-finite weights (the guard's last good state goes in instead). None
        when it could not be written (``news`` says why)."""
        saved = self.checkpoints.save(path, self.at.step, self._savable_state)
        if path == self.paths.last:  # (written or not: a full disk is tried at the next save point, not every step)
            self.meter.checkpoint_written()
        return saved

    def save_last_in_background(self) -> bool:
        """--checkpoint-every: last.pt at this step, the state copied now and written on the
        checkpoint writer's thread (CheckpointWriter.save_in_background); the copy is kept
        out of img/s. False when the previous one is still being written: the loop tries
        again at its next step."""
        started = self.meter.start_off_the_clock()
        taken = self.checkpoints.save_in_background(self.paths.last, self._savable_state)
        self.meter.off_the_clock(started)
        if taken:
            self.meter.checkpoint_written()
        return taken

    def _savable_state(self) -> dict[str, Any]:
        self.guard.make_savable(self.gan.modules())
        return self.state_dict()

    # ================================================================== when the disk takes no writes

    def grid(self, images: torch.Tensor, path: Path, first_class: int | None = None) -> Path | None:
        """Save a sample grid; None when it could not be written (``news`` says why). A
        conditional run's has a row per class from ``first_class`` (default: the shown one)
        on, named at its left."""
        names = self.config.class_names or []
        rows = [names[c] for c in self.gan.row_classes(first_class)]

        def write() -> Path:
            return save_class_grid(images, path, rows, SAMPLE_COLUMNS) if rows else save_grid(images, path)

        failure = self.writes.try_write(GRIDS, path, write, f"{path.parent.name}/{path.name}")
        return path if failure is None else None

    def news(self) -> Iterator[EngineEvent]:
        """What the run's writes have to say since the last look (core/outage.py): a failed
        write that starts an outage, the write that ends it, the newest checkpoint (one the
        checkpoint writer's thread wrote included)."""
        yield from self.writes.take()


def _written(path: Path | None) -> str:
    """A path for an event; '' for a file that could not be written."""
    return str(path) if path is not None else ""
