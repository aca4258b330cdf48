"""Checkpoints: plain dicts of tensors and plain data, written atomically, loaded with
``torch.load(weights_only=True)`` so a checkpoint can never run code on load."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .. import __version__
from ..core.atomic import atomic_write
from ..core.errors import UserError, first_line
from ..core.history import COLUMNS, rows_from_table
from ..core.rundir import RunDir

if TYPE_CHECKING:  # the engine imports this module
    from .engine import Engine

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


def engine_state(engine: Engine) -> dict[str, Any]:
    """Everything needed to continue ``engine``'s run exactly: tensors and plain data only."""
    gan = engine.gan
    rng = {**gan.rng_state(), "data": {"seed": engine.config.seed, "epoch": engine.epoch, "batch": engine.batch_in_epoch}}
    history = torch.tensor(engine.history, dtype=torch.float64).reshape(-1, len(COLUMNS))
    return {
        **gan.state_dict(),
        "step": engine.step,
        "epoch": engine.epoch,
        "batch_in_epoch": engine.batch_in_epoch,
        "config": engine.config.to_dict(),
        "rng": rng,
        "history": {"columns": list(COLUMNS), "values": history},
        "elapsed_s": float(engine.meter.train_time if engine.meter is not None else engine.elapsed_base),
        "tui_gan_version": __version__,
    }


def restore_engine(engine: Engine, state: dict[str, Any]) -> str | None:
    """Put a loaded checkpoint's run back into ``engine`` (its GAN built, its data loaded),
    to continue exactly where it left off. Returns a warning for the user, if any."""
    engine.step = int(state["step"])
    engine.epoch = int(state["epoch"])
    engine.batch_in_epoch = int(state.get("batch_in_epoch", 0))
    if engine.batch_in_epoch >= engine.steps_per_epoch:  # the dataset shrank since
        engine.epoch, engine.batch_in_epoch = engine.epoch + 1, 0
    # learning rates given on the command line replace the ones that were waiting
    warning = engine.gan.load_state_dict(state, engine.step, keep_pending=not {"lr_g", "lr_d"} & engine.explicit)
    hist = state.get("history")
    if hist is not None and len(hist.get("values", [])):
        engine.history = rows_from_table(list(hist["columns"]), hist["values"].tolist())
    engine.elapsed_base = float(state.get("elapsed_s", 0.0))
    if "path" in state:
        engine.checkpoints.loaded(engine.step, state["path"])
    return warning
