"""Writing a run's data for other tools: TensorBoard event files (no torch).

TensorBoard's own writer is the tensorboard extra; only tbevents.py imports it, and only
when a file is written, so what imports this package pays for it only then."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from ..core.errors import UserError, first_line

EXTRA = "pip install 'tui-gan[tensorboard]'"


def missing_extra(what: str, reason: str | None = None) -> str:
    """The line that says ``what`` (a flag, a command) needs the extra, and how to get it."""
    return f"{what} needs the tensorboard extra: {EXTRA}" + (f" ({reason})" if reason else "")


def require_tensorboard(what: str) -> None:
    """UserError at once when the extra is not installed: a look for the package without
    importing it (which takes a few tenths of a second), for a check before a run starts."""
    if importlib.util.find_spec("tensorboard") is None:
        raise UserError(missing_extra(what))


def event_file_module(what: str) -> ModuleType:
    """tbevents.py, which imports TensorBoard; UserError when it cannot be imported (the
    reason added where TensorBoard is there but something it needs is not)."""
    try:
        return importlib.import_module(".tbevents", __name__)
    except ImportError as exc:
        ours = (exc.name or "").split(".")[0] == "tensorboard"
        raise UserError(missing_extra(what, None if ours else first_line(exc))) from None
