"""Setting up a run: its first event, and the slow part: the data is generated or decoded in a helper thread while the GAN is
built in the engine's thread, with progress as Loading events.

The first optimizer pulls in torch's compiler stack, which takes seconds: building the
models while the data loads hides that. Unless the channels depend on the images (a
folder decides 1 or 3 by what it holds), in which case the models wait for the data.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import torch

from ..core import events as ev
from ..core.atomic import atomic_write_text
from ..core.config import TrainConfig
from ..core.history import HistoryRow
from ..data.loader import Dataset, StreamedDataset, load_dataset
from ..pictures.progression import epoch_samples
from .conditional import SAMPLE_COLUMNS
from .devices import describe_device
from .gan import Gan
from .position import Position
from .world import World


class SetUp(Protocol):
    """What the Started event reports of an engine that is set up (the Engine is one)."""

    config: TrainConfig
    run_dir: Path
    device: torch.device
    data: Dataset | StreamedDataset
    gan: Gan
    at: Position
    history: list[HistoryRow]
    resume_state: dict[str, Any] | None
    world: World


class StoppedDuringSetup(Exception):
    """A stop was requested before training started; there is nothing new to save."""


Loaded = tuple[Dataset | StreamedDataset, Gan, list[str]]


def load_data_and_gan(cfg: TrainConfig, device: torch.device, stop_reason: Callable[[], str | None],
                      config_toml: Path | None, world: World) -> Generator[ev.Loading, None, Loaded]:
    """Yield Loading events; return the data, the GAN and warnings for the user. When the
    images decide the channels, ``cfg`` gets them and ``config_toml`` is written again
    (unless None: not rank 0); so do a conditional run's classes.
    Raises StoppedDuringSetup as soon as ``stop_reason()`` gives one."""
    label = "generating the built-in dataset" if cfg.data == "builtin" else f"reading {cfg.data}"
    updates: queue.Queue[tuple[int, int]] = queue.Queue()

    def report(done: int, total: int) -> None:  # in the data thread
        reason = stop_reason()
        if reason is not None:
            raise StoppedDuringSetup(reason)
        updates.put((done, total))

    gan = None
    notes: list[str] = []
    with ThreadPoolExecutor(1, thread_name_prefix="tui-gan-data") as pool:
        future = pool.submit(load_dataset, cfg, device, report, notes)
        yield ev.Loading(label)
        if cfg.channels is not None and (not cfg.conditional or cfg.class_names is not None):
            gan = Gan(cfg, device, world)
        while not (future.done() and updates.empty()):
            try:
                done, total = updates.get(timeout=0.1)
            except queue.Empty:
                continue
            yield ev.Loading(label, done, total)
        data = future.result()
    if gan is None:  # the images decided the channels, or the classes
        cfg.channels = data.channels
        if cfg.conditional:
            cfg.class_names = list(data.class_names)
        if config_toml is not None:
            atomic_write_text(config_toml, cfg.to_toml())
        gan = Gan(cfg, device, world)
    if data.skipped:
        names = ", ".join(Path(p).name for p in data.skipped[:3])
        notes.append(f"skipped {len(data.skipped)} unreadable file(s): {names}")
    return data, gan, notes


def started_event(engine: SetUp) -> ev.Started:
    """The first event of training: the run's settings, data and history so far."""
    cfg, gan, data, at = engine.config, engine.gan, engine.data, engine.at
    return ev.Started(
        device=describe_device(engine.device) + engine.world.describe(),
        preset=cfg.preset,
        config=cfg.to_dict(),
        dataset=data.name,
        dataset_size=len(data),
        steps_per_epoch=at.steps_per_epoch,
        total_steps=at.total_steps,
        run_dir=str(engine.run_dir),
        step=at.step,
        epoch=at.epoch,
        resumed_from=engine.resume_state.get("path") if engine.resume_state else None,
        history=list(engine.history),
        lr_g=gan.lr_g,
        lr_d=gan.lr_d,
        skipped=list(data.skipped),
        progression=(_progression(engine) if engine.resume_state else []),
        precision=gan.precision.name,
        precision_why=gan.precision.why,
    )


def _progression(engine: SetUp) -> list:
    """A resumed run's epoch grids, split back into their samples (the app's history)."""
    cfg, gan = engine.config, engine.gan
    if gan.classes:  # one row per class from the first (outputs.py), SAMPLE_COLUMNS each
        rows = len(gan.row_classes(0))
        return epoch_samples(engine.run_dir, rows * SAMPLE_COLUMNS, cfg.image_size, cfg.channels, SAMPLE_COLUMNS)
    return epoch_samples(engine.run_dir, len(gan.fixed_noise), cfg.image_size, cfg.channels)
