"""A checkpoint written on a thread of its own (--checkpoint-every): one write at a time,
its failure handed back to the training thread, and the copy of the state it writes.

CheckpointWriter (checkpoint.py) decides what is written and when; this only runs it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


class BackgroundWrite:
    """At most one write of a file under way on its own thread."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._failure: tuple[Path, BaseException] | None = None  # the thread's, for the caller's thread

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, path: Path, write: Callable[[], object]) -> None:
        """Run ``write()`` (which writes ``path``) on a new thread; after wait() if one runs."""
        self.wait()
        self._thread = threading.Thread(target=self._run, args=(path, write), name="checkpoint-writer", daemon=True)
        self._thread.start()

    def _run(self, path: Path, write: Callable[[], object]) -> None:
        try:
            write()
        except BaseException as exc:  # noqa: BLE001 - raised in the training thread by raise_failure
            self._failure = (path, exc)

    def wait(self) -> None:
        """Let the write under way end (a failure is kept for raise_failure)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def raise_failure(self) -> None:
        """Raise the failure of the last write, once, in the caller's thread (after wait())."""
        if self._failure is not None:
            failure, self._failure = self._failure[1], None
            raise failure

    def superseded(self, path: Path) -> None:
        """``path`` was written since (after wait()): a failure to write it no longer matters."""
        if self._failure is not None and self._failure[0] == path:
            self._failure = None


def host_copy(value: Any) -> Any:
    """``value`` with every tensor copied to the CPU (from a GPU a device-to-host copy, on
    the CPU a clone), through dicts, lists and tuples: a state the training cannot change."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: host_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [host_copy(item) for item in value]
    if isinstance(value, tuple):
        return tuple(host_copy(item) for item in value)
    return value
