"""Every path tui-gan reads or writes, in one place: a run directory's files, where runs
go by default, and the per-user cache (decoded datasets, downloaded datasets).

A run directory::

    config.toml                      the resolved settings (reusable with --config)
    metrics.csv                      the metric history, one row per log interval
    checkpoints/last.pt              written at every epoch's end and on every stop
    checkpoints/best.pt              the state with the lowest SWD so far
    checkpoints/snapshot-<step>.pt   on request (s)
    samples/epoch-<NNNN>.png         the fixed-noise grid at each epoch's end
    samples/snapshot-<step>.png, export-step<step>.png, final-step<step>.png
    samples/progression.gif, interpolation-step<step>.gif
    tensorboard/events.out.tfevents.*  --tensorboard's event files, one per start of the
                                     service, and tui-gan export-tb's (exports/tensorboard.py)
    train.log                        the run's log lines (what --headless prints)
    service.json                     the training service: pid, socket, state (service/runfiles.py)
    service.lock                     held (flock) by the one process training this run

The cache follows the XDG base directory rule: ``$XDG_CACHE_HOME/tui-gan`` when that is
set, else ``~/.cache/tui-gan``; ``$TUI_GAN_CACHE_DIR`` moves the decode cache alone.
"""

from __future__ import annotations

import os
import re
import time
import zipfile
from pathlib import Path

from .atomic import atomic_write_text
from .errors import UserError

EPOCH_GRID = re.compile(r"epoch-(\d+)\.png$")
DEFAULT_RUNS = "runs"


class RunDir:
    """The paths of one run directory (only ``check_writable`` and ``create`` write)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def check_writable(self) -> None:
        """Make the folder and write a probe file in it: the CLI's early check, before torch
        loads. UserError when that is not possible."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise self._unwritable(exc) from None

    def create(self, config_toml: str) -> None:
        """Make the folders and write config.toml; UserError when that is not possible."""
        try:
            for folder in (self.checkpoints, self.samples):
                folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.config, config_toml)
        except OSError as exc:
            raise self._unwritable(exc) from None

    def _unwritable(self, exc: OSError) -> UserError:
        return UserError(f"cannot write the run directory {str(self.root)!r} ({exc.strerror or exc}); "
                         "pass --run-dir with a writable folder")

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def service_record(self) -> Path:
        return self.root / "service.json"

    @property
    def service_lock(self) -> Path:
        return self.root / "service.lock"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def tensorboard(self) -> Path:
        """TensorBoard's event files: --tensorboard's and ``tui-gan export-tb``'s."""
        return self.root / "tensorboard"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        """The state with the lowest SWD so far (written when a measurement beats it)."""
        return self.checkpoints / "best.pt"

    def snapshot(self, step: int) -> Path:
        return self.checkpoints / f"snapshot-{step}.pt"

    def snapshot_grid(self, step: int) -> Path:
        return self.samples / f"snapshot-{step}.png"

    def epoch_grid(self, epoch: int) -> Path:
        return self.samples / f"epoch-{epoch:04d}.png"

    def export_grid(self, step: int) -> Path:
        return self.samples / f"export-step{step}.png"

    def final_grid(self, step: int) -> Path:
        return self.samples / f"final-step{step}.png"

    @property
    def progression_gif(self) -> Path:
        return self.samples / "progression.gif"

    def interpolation_gif(self, step: int) -> Path:
        return self.samples / f"interpolation-step{step}.gif"

    def epoch_grids(self) -> list[tuple[int, Path]]:
        """(epoch, path) of each epoch-end grid written so far, in epoch order."""
        found = []
        for path in self.samples.glob("epoch-*.png"):
            match = EPOCH_GRID.search(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def checkpoint_in(self) -> Path | None:
        """The checkpoint ``--resume RUN_DIR`` continues from: checkpoints/last.pt (or a
        last.pt beside it), None when there is none."""
        for candidate in (self.last, self.root / "last.pt"):
            if candidate.is_file():
                return candidate
        return None

    def is_run(self) -> bool:
        """Whether this folder looks like a run directory (a config.toml or a service record);
        False when it cannot be looked into (another user's, say)."""
        try:
            return self.config.is_file() or self.service_record.is_file()
        except OSError:
            return False

    @staticmethod
    def of_resume(spec: str | Path) -> RunDir:
        """The run directory ``--resume SPEC`` continues: SPEC itself when it is a folder,
        else the run of the checkpoint file it names. UserError when SPEC names neither."""
        path = Path(spec).expanduser()
        if path.is_dir():
            if RunDir(path).checkpoint_in() is None:
                raise UserError(f"{spec}: no checkpoints/last.pt in this folder; pass a run directory or a .pt file")
            return RunDir(path.resolve())
        if not path.exists():
            raise UserError(f"{spec}: no such checkpoint or run directory; check the path")
        # Checked before a service takes the folder for the run (torch reads the rest later):
        # torch.save writes a zip archive, so anything else is not a checkpoint of ours.
        if not path.is_file():
            raise UserError(f"{spec}: not a regular file; pass a .pt file or a run directory")
        if not zipfile.is_zipfile(path):
            raise UserError(f"{spec}: not a readable tui-gan checkpoint (not a file torch.save wrote)")
        return RunDir.of_checkpoint(path)

    @staticmethod
    def of_checkpoint(checkpoint: str | Path) -> RunDir:
        """The run directory a checkpoint belongs to (RUN/checkpoints/x.pt -> RUN)."""
        path = Path(checkpoint).resolve()
        return RunDir(path.parent.parent if path.parent.name == "checkpoints" else path.parent)


def run_dirs(root: str | Path) -> list[RunDir]:
    """The run directories directly in ``root``, by name (none when it is not a folder)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [RunDir(path.resolve()) for path in sorted(root.iterdir()) if path.is_dir() and RunDir(path).is_run()]


def new_run_dir(root: str | Path = DEFAULT_RUNS) -> Path:
    """``runs/<timestamp>``, with a suffix when that exists already."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    path = Path(root) / stamp
    n = 2
    while path.exists():
        path = Path(root) / f"{stamp}-{n}"
        n += 1
    return path


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/tui-gan``, else ``~/.cache/tui-gan``."""
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "tui-gan"


def decode_cache_dir() -> Path:
    """``$TUI_GAN_CACHE_DIR``, else ``<cache root>/decoded``."""
    explicit = os.environ.get("TUI_GAN_CACHE_DIR")
    return Path(explicit).expanduser() if explicit else cache_root() / "decoded"


def dataset_root(root: str | None = None) -> Path:
    """Where named datasets are kept: ``--data-root``, else ``<cache root>/datasets``."""
    return Path(root).expanduser() if root else cache_root() / "datasets"


def describe_dataset_root() -> str:
    """The default dataset root as the help text shows it."""
    return "$XDG_CACHE_HOME/tui-gan/datasets, else ~/.cache/tui-gan/datasets"
