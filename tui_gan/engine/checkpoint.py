"""Checkpoints: plain dicts of tensors and plain data, written atomically, loaded with
``torch.load(weights_only=True)`` so a checkpoint can never run code on load."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_write
from .errors import UserError, first_line

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
        for candidate in (path / "checkpoints" / "last.pt", path / "last.pt"):
            if candidate.is_file():
                return candidate
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


def run_dir_of(checkpoint_path: str | Path) -> Path:
    """The run directory a checkpoint belongs to (RUN/checkpoints/x.pt -> RUN)."""
    path = Path(checkpoint_path).resolve()
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent
