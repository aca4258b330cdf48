"""Checkpoints: plain dicts of tensors and plain data, written atomically, loaded with
``torch.load(weights_only=True)`` so a checkpoint can never run code on load."""

from __future__ import annotations

import math
import warnings
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
from ..core.outage import CHECKPOINTS, WriteWatch
from ..core.rundir import RunDir
from .background import BackgroundWrite, host_copy
from .gan import Gan
from .nets import model_pair

FORMAT = "tui-gan-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("generator", "discriminator", "optimizer_g", "optimizer_d", "step", "epoch", "config")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: a kill at any moment leaves the old file intact."""
    payload = {"format": FORMAT, "version": VERSION, **state}
    return atomic_write(path, lambda f: torch.save(payload, f))


def resolve_checkpoint_path(spec: str | Path) -> Path:
    """A run directory means its checkpoints/last.pt; a regular file is taken as it is."""
    try:  # only looking at the path: any failure means it cannot be looked at
        path = Path(spec).expanduser()
        is_dir, exists, is_file = path.is_dir(), path.exists(), path.is_file()
        found = RunDir(path).checkpoint_in() if is_dir else None
    except Exception as exc:  # noqa: BLE001 - a folder without permission, a name too long, '~nobody'
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
        raise UserError(f"{spec}: cannot look at this path ({reason[:120]}); check it and its permissions") from None
    if is_dir:
        if found is not None:
            return found
        raise UserError(f"{spec}: no checkpoints/last.pt in this folder; pass a run directory or a .pt file")
    if not exists:
        raise UserError(f"{spec}: no such checkpoint or run directory; check the path")
    if not is_file:  # reading a FIFO would wait for a writer forever, a device for ever more bytes
        raise UserError(f"{spec}: not a regular file; pass a .pt file or a run directory")
    return path


def load_checkpoint(spec: str | Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU. Whatever the file holds, this returns a state whose
    structure and settings are checked (see check_state), or raises a one-line UserError."""
    path = resolve_checkpoint_path(spec)
    try:
        _check_records(path)
        # Held back: a hostile file makes torch.load warn before it fails (an unusual pickle
        # protocol, say), and the failure is the one line to show. Shown when it loads.
        with warnings.catch_warnings(record=True) as caught:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever the bytes make the decoder raise, it means one thing
        raise UserError(f"{path}: not a readable tui-gan checkpoint ({_load_failure(exc)})") from None
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path}: not a tui-gan checkpoint (no '{FORMAT}' marker)")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise UserError(f"{path}: checkpoint is incomplete (missing {', '.join(missing)})")
    try:
        config = check_state(state, source=f"checkpoint {path}")
    except InvalidCheckpoint as exc:
        raise UserError(f"{path}: damaged or edited tui-gan checkpoint ({str(exc)[:160]})") from None
    # complete and validated: callers may read any setting (an older file may lack some)
    state["config"] = config.to_dict()
    state["path"] = str(path)
    return state


def failure_reason(exc: BaseException, limit: int = 120) -> str:
    """An exception's first line for a one-line message about a file (see _printable)."""
    return _printable(first_line(exc), limit)


def _printable(text: str, limit: int) -> str:
    """Printable characters only (an error can quote a file's bytes, and those could be
    terminal escapes), cut to ``limit``."""
    return "".join(c if c.isprintable() else "?" for c in text)[:limit]


def _load_failure(exc: BaseException) -> str:
    """The line of a torch.load error that says what is wrong: when the safe loader refuses
    a pickle, its first line is about weights_only's default and the reason comes later."""
    text = str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Weights only load failed"):
        _, marker, after = text.partition("WeightsUnpickler error:")
        details = [line.strip() for line in (after if marker else "\n".join(lines[1:])).splitlines()]
        details = [line for line in details if line and not line.startswith("Check the documentation")]
        if details:
            return _printable(f"refused by the safe loader: {details[0]}", 120)
    return failure_reason(exc)


def _check_records(path: Path) -> None:
    """Verify the CRC-32 the zip format keeps for each record of a torch.save file:
    torch.load does not, so a flipped bit in the weights would load silently. Stored
    records only (torch.save writes nothing else): checking them needs no decompression,
    so a hostile archive cannot make this expand gigabytes."""
    if not zipfile.is_zipfile(path):
        return  # not a zip archive: torch.load says what it is not
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.compress_type == zipfile.ZIP_STORED:
                with archive.open(info) as record:
                    while record.read(1 << 20):  # raises BadZipFile at the end on a CRC mismatch
                        pass


class InvalidCheckpoint(ValueError):
    """A checkpoint's content is not what tui-gan writes (the reason, for a UserError)."""


def check_state(state: dict[str, Any], source: str) -> TrainConfig:
    """Check that a loaded checkpoint holds what run_state writes, with the types and
    shapes its settings need, so that sampling and resuming cannot fail half way on an
    edited or damaged file. Returns its settings. Raises InvalidCheckpoint, or UserError
    for an invalid setting (from TrainConfig's own validation)."""
    for key in ("step", "epoch", "batch_in_epoch"):
        value = state.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidCheckpoint(f"{key} is {_describe(value)}, not a non-negative integer")
    _check_number(state, "elapsed_s", allow_zero=True)
    for key in ("lr_g", "lr_d"):
        _check_number(state, key, allow_zero=False)
    pending = state.get("pending_lr")
    if pending is not None and not (isinstance(pending, (list, tuple)) and len(pending) == 2
                                    and all(_positive(v, allow_zero=False) for v in pending)):
        raise InvalidCheckpoint(f"pending_lr is {_describe(pending)}, not two learning rates")
    config = _settings(state["config"], source)
    generator, discriminator = _shapes(config)
    _check_weights(state["generator"], generator, "generator")
    _check_weights(state["discriminator"], discriminator, "discriminator")
    if "generator_ema" in state:  # --ema: the average has the generator's shapes
        _check_weights(state["generator_ema"], generator, "generator_ema")
    updates = state.get("ema_updates", 0)
    if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:
        raise InvalidCheckpoint(f"ema_updates is {_describe(updates)}, not a non-negative integer")
    for key in ("optimizer_g", "optimizer_d"):
        saved = state[key]
        if not (isinstance(saved, dict) and isinstance(saved.get("state"), dict)
                and isinstance(saved.get("param_groups"), list)
                and all(isinstance(g, dict) for g in saved["param_groups"])):
            raise InvalidCheckpoint(f"{key} is not an optimizer state")
    noise = state.get("fixed_noise")
    if noise is not None and not (isinstance(noise, torch.Tensor) and noise.dtype == torch.float32
                                  and noise.dim() == 4 and noise.shape[0] > 0
                                  and tuple(noise.shape[1:]) == (config.nz, 1, 1)):
        raise InvalidCheckpoint(f"fixed_noise is {_describe(noise)}, not float32 (N, {config.nz}, 1, 1) noise")
    if not isinstance(state.get("rng", {}), dict):
        raise InvalidCheckpoint(f"rng is {_describe(state['rng'])}, not a table of random states")
    history = state.get("history")
    if history is not None and not (isinstance(history, dict) and isinstance(history.get("columns"), list)
                                    and all(isinstance(c, str) for c in history["columns"])
                                    and isinstance(history.get("values"), torch.Tensor)
                                    and history["values"].dim() == 2
                                    and history["values"].shape[1] == len(history["columns"])):
        raise InvalidCheckpoint("history is not a table of named columns")
    return config


def _settings(saved: Any, source: str) -> TrainConfig:
    if not isinstance(saved, dict) or not all(isinstance(k, str) for k in saved):
        raise InvalidCheckpoint(f"config is {_describe(saved)}, not a table of settings")
    try:
        return TrainConfig.from_dict(dict(saved), source=source)
    except UserError as exc:  # its messages quote the value, which a file can make any length
        text = str(exc)
        raise UserError(text if len(text) <= 500 else text[:500] + "...") from None
    except Exception as exc:  # noqa: BLE001 - a value validate() cannot even compare (a tensor, say)
        raise InvalidCheckpoint(f"config cannot be used: {failure_reason(exc, 100)}") from None


def _shapes(config: TrainConfig) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The state_dicts the settings' models have, on the meta device: shapes and dtypes
    without memory, so even absurd widths cost nothing."""
    try:
        with torch.device("meta"):
            generator, discriminator = model_pair(config)
            return generator.state_dict(), discriminator.state_dict()
    except Exception as exc:  # noqa: BLE001 - settings that pass validate() but build no model (16.0, say)
        raise InvalidCheckpoint(f"its settings build no model ({failure_reason(exc, 100)})") from None


def _check_weights(saved: Any, expected: dict[str, torch.Tensor], name: str) -> None:
    if not isinstance(saved, dict):
        raise InvalidCheckpoint(f"{name} is {_describe(saved)}, not a table of weights")
    unexpected = [k for k in saved if k not in expected]
    missing = [k for k in expected if k not in saved]
    if unexpected or missing:
        what = f"no {missing[0]!r}" if missing else f"an unexpected {str(unexpected[0])[:40]!r}"
        raise InvalidCheckpoint(f"{name} weights do not fit its settings ({what})")
    for key, want in expected.items():
        got = saved[key]
        if not (isinstance(got, torch.Tensor) and got.layout == torch.strided and not got.is_complex()
                and got.is_floating_point() == want.is_floating_point() and got.shape == want.shape):
            raise InvalidCheckpoint(f"{name} weight {key!r} is {_describe(got)}; its settings need "
                                    f"{want.dtype} {tuple(want.shape)}")


def _check_number(state: dict[str, Any], key: str, allow_zero: bool) -> None:
    if key in state and not _positive(state[key], allow_zero):
        raise InvalidCheckpoint(f"{key} is {_describe(state[key])}, not a finite "
                                f"{'non-negative' if allow_zero else 'positive'} number")


def _positive(value: Any, allow_zero: bool) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and (value >= 0 if allow_zero else value > 0))


def _describe(value: Any) -> str:
    """A short description of a value for a one-line message."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor {tuple(value.shape)}"
    text = repr(value)
    return f"a {type(value).__name__}" if len(text) > 40 else text


class CheckpointWriter:
    """Writes one run's checkpoints, and skips a write when the same file already holds
    the same step (an epoch's end followed by a stop, say). Every checkpoint of a run is
    written by ``write``, through the run's WriteWatch (core/outage.py): a disk that takes no
    writes costs that checkpoint, not the run, and the next save tries again.

    ``save_in_background`` (--checkpoint-every) takes a copy of the state in the caller's
    thread and writes it on a thread of its own, one write at a time (background.py), with
    ``write`` too. Every other save waits for that write first: two writes never share a
    file (or its temporary file), and the newer state is the one the file keeps."""

    def __init__(self, writes: WriteWatch | None = None) -> None:
        self.writes = writes if writes is not None else WriteWatch()
        self._saved: tuple[int, Path] | None = None  # (step, path) of the newest checkpoint written or loaded
        self.background = BackgroundWrite()

    def loaded(self, step: int, path: str | Path) -> None:
        path = Path(path)
        self._saved = (step, path.resolve())
        try:
            written = path.stat().st_mtime
        except OSError:
            written = None
        self.writes.checkpoint(step, path, written)

    def save(self, path: Path, step: int, state: Callable[[], dict[str, Any]]) -> Path | None:
        """Write ``state()`` to ``path`` unless it holds ``step`` already; None when it
        could not be written (the WriteWatch tells the run why)."""
        self.background.wait()
        if self._saved == (step, path.resolve()) and path.exists():
            return path
        return self.write(path, step, state())

    def write(self, path: Path, step: int, state: dict[str, Any]) -> Path | None:
        """Write ``state``, the run at ``step``, to ``path`` (atomically: a failed write
        leaves the old file and no temporary one); None when it could not be written."""
        failure = self.writes.try_write(CHECKPOINTS, path, lambda: save_checkpoint(path, state),
                                        f"{path.name} of step {step}")
        if failure is not None:
            return None
        self._saved = (step, path.resolve())
        self.background.superseded(path)
        self.writes.checkpoint(step, path)
        return path

    def save_in_background(self, path: Path, state: Callable[[], dict[str, Any]]) -> bool:
        """Copy ``state()`` now (off the live tensors, onto the CPU: the next step changes
        them in place) and write the copy to ``path`` on the writer thread. False, taking
        nothing, while the previous background write is still under way: training never
        waits for the disk, and no copies pile up in memory. Raises the previous background
        write's failure, if it had one, here in the caller's thread."""
        if self.background.busy:
            return False
        self.background.wait()
        self.background.raise_failure()
        copy = host_copy(state())
        if self._saved is not None and self._saved[1] == path.resolve():
            self._saved = None  # it will hold another state (of this step, but with less history)
        step = int(copy.get("step", 0))
        self.background.start(path, lambda: self.write(path, step, copy))  # a full disk is the WriteWatch's news
        return True

    def wait(self) -> None:
        """Let a background write end."""
        self.background.wait()


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
    """Load a checkpoint's GAN state into ``gan`` and return the rest of its run. UserError
    when its content cannot be restored: load_checkpoint checks the structure, and this
    catches what only loading shows (an optimizer or random state of the wrong size, say)."""
    try:
        return _restore(gan, state, steps_per_epoch, keep_pending_lrs)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - content of the file, whatever the way it does not fit
        where = state.get("path", "the checkpoint")
        raise UserError(f"{where}: cannot continue from this checkpoint ({failure_reason(exc)})") from None


def _restore(gan: Gan, state: dict[str, Any], steps_per_epoch: int, keep_pending_lrs: bool) -> Restored:
    step, epoch = int(state["step"]), int(state["epoch"])
    batch_in_epoch = int(state.get("batch_in_epoch", 0))
    if batch_in_epoch >= steps_per_epoch:  # the dataset shrank since
        epoch, batch_in_epoch = epoch + 1, 0
    warning = gan.load_state_dict(state, step, keep_pending=keep_pending_lrs)
    _check_moments(gan.optG, "optimizer_g")
    _check_moments(gan.optD, "optimizer_d")
    hist = state.get("history")
    history = (rows_from_table(list(hist["columns"]), hist["values"].tolist())
               if hist is not None and len(hist.get("values", [])) else [])
    return Restored(step, epoch, batch_in_epoch, history, float(state.get("elapsed_s", 0.0)), warning)


def _check_moments(optimizer: torch.optim.Optimizer, name: str) -> None:
    """Adam's per-parameter state must fit the parameters: loading does not check that,
    and the first step would fail on it (as a training failure, not a bad file)."""
    for param, values in optimizer.state.items():
        for key, value in values.items():
            fits = isinstance(value, torch.Tensor) and (value.numel() == 1 if key == "step" else value.shape == param.shape)
            if not fits:
                raise InvalidCheckpoint(f"{name} {key} is {_describe(value)} for a parameter {tuple(param.shape)}")
