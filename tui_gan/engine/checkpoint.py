"""Checkpoints: plain dicts of tensors and plain data, written atomically, loaded with
``torch.load(weights_only=True)`` so a checkpoint can never run code on load."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..core.atomic import atomic_write
from ..core.config import TrainConfig
from ..core.errors import UserError, first_line
from ..core.history import COLUMNS, HistoryRow, rows_from_table
from ..core.rundir import RunDir
from .gan import Gan

FORMAT = "tui-gan-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("generator", "discriminator", "optimizer_g", "optimizer_d", "step", "epoch", "config")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: a kill at any moment leaves the old file intact."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    return atomic_write(path, lambda f: torch.save(payload, f))


def resolve_checkpoint_path(spec: str | Path) -> Path:
    """A run directory means its checkpoints/last.pt; a file is taken as it is."""
    path = Path(spec).expanduser()
    if path.is_dir():
        found = RunDir(path).checkpoint_in()
        if found is not None:
            return found
        raise UserError(f"{spec}: no checkpoints/last.pt in this folder; pass a run directory or a .pt file")
    if not path.exists():
        raise UserError(f"{spec}: no such checkpoint or run directory; check the path")
    return path


def load_checkpoint(spec: str | Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU; raise UserError if it is missing, corrupt or not ours."""
    path = resolve_checkpoint_path(spec)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        reason = first_line(exc)
        raise UserError(f"{path}: not a readable tui-gan checkpoint ({reason[:120]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path}: not a tui-gan checkpoint (no '{FORMAT}' marker)")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise UserError(f"{path}: checkpoint is incomplete (missing {', '.join(missing)})")
    state["path"] = str(path)
    return state


class CheckpointWriter:
    """Writes one run's checkpoints, and skips a write when the same file already holds
    the same step (an epoch's end followed by a stop, say)."""

    def __init__(self) -> None:
        self._saved: tuple[int, Path] | None = None  # (step, path) of the newest checkpoint written or loaded

    def loaded(self, step: int, path: str | Path) -> None:
        self._saved = (step, Path(path).resolve())

    def save(self, path: Path, step: int, state: Callable[[], dict[str, Any]]) -> Path:
        """Write ``state()`` to ``path`` unless it holds ``step`` already."""
        if self._saved == (step, path.resolve()) and path.exists():
            return path
        save_checkpoint(path, state())
        self._saved = (step, path.resolve())
        return path


def run_state(gan: Gan, config: TrainConfig, position: tuple[int, int, int], history: list[HistoryRow],
              elapsed_s: float) -> dict[str, Any]:
    """Everything needed to continue a run exactly: the GAN's state, the position (step,
    epoch, batch in the epoch), the settings and the history. Tensors and plain data only."""
    step, epoch, batch_in_epoch = position
    rng = {**gan.rng_state(), "data": {"seed": config.seed, "epoch": epoch, "batch": batch_in_epoch}}
    return {
        **gan.state_dict(),
        "step": step,
        "epoch": epoch,
        "batch_in_epoch": batch_in_epoch,
        "config": config.to_dict(),
        "rng": rng,
        "history": {"columns": list(COLUMNS), "values": torch.tensor(history, dtype=torch.float64).reshape(-1, len(COLUMNS))},
        "elapsed_s": float(elapsed_s),
        "tui_gan_version": __version__,
    }


@dataclass(frozen=True)
class Restored:
    """Where a checkpoint's run stood, for the engine to continue from."""

    step: int
    epoch: int
    batch_in_epoch: int
    history: list[HistoryRow]
    elapsed_s: float
    warning: str | None
    """For the user, when the run cannot continue exactly (see Gan.load_state_dict)."""


def restore_run(gan: Gan, state: dict[str, Any], steps_per_epoch: int, keep_pending_lrs: bool) -> Restored:
    """Load a checkpoint's GAN state into ``gan`` and return the rest of its run."""
    step, epoch = int(state["step"]), int(state["epoch"])
    batch_in_epoch = int(state.get("batch_in_epoch", 0))
    if batch_in_epoch >= steps_per_epoch:  # the dataset shrank since
        epoch, batch_in_epoch = epoch + 1, 0
    warning = gan.load_state_dict(state, step, keep_pending=keep_pending_lrs)
    hist = state.get("history")
    history = (rows_from_table(list(hist["columns"]), hist["values"].tolist())
               if hist is not None and len(hist.get("values", [])) else [])
    return Restored(step, epoch, batch_in_epoch, history, float(state.get("elapsed_s", 0.0)), warning)
