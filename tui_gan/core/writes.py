"""Writing the run directory when it may not take writes: a full disk, a quota, a folder
turned read-only, a failing disk. Such a failure must not end the run (docs/runs.md, "When
the disk fills"); every write of a run's files goes through one of these:

- ``write_failure(exc, path)``: whether an exception means that ``path`` could not be
  written, and the reason in words ('no space left on device'). Any OSError does; so does
  the RuntimeError torch's zip writer raises when the disk takes fewer bytes than it wrote.
  Anything else (a bug, an interrupt) is not a failed write and goes on up.
- ``AppendFile``: a file appended in whole pieces (metrics rows, TensorBoard records, log
  lines): a piece the disk does not take is cut off again, so no half row stays behind to
  be continued by the next one. Files written whole go through core/atomic.py, which leaves
  the old file and no temporary one when a write fails.
- ``WriteWatch`` (core/outage.py) records the failures and the writes that work again, and
  turns them into the run's events.

Standard library only.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from .errors import first_line

MIB = 1 << 20
ZIP_WRITER_MARKS = ("inline_container", "PytorchStreamWriter", "file write failed")
"""What torch's zip writer says when its file took fewer bytes than it wrote (torch.save)."""


def write_failure(exc: BaseException, path: str | Path) -> str | None:
    """Why ``path`` could not be written, in words, when ``exc`` means that: 'no space left
    on device', 'disk quota exceeded', 'read-only file system'... None when ``exc`` is not
    a failed write (the caller lets it go on up)."""
    if isinstance(exc, OSError):
        return _os_reason(exc)
    if isinstance(exc, RuntimeError) and any(mark in str(exc) for mark in ZIP_WRITER_MARKS):
        for cause in _chain(exc):  # the file's own error, where Python saw one (a failed flush)
            if isinstance(cause, OSError) and cause.errno:
                return _os_reason(cause)
        return "no space left on device" if short_of_space(Path(path)) else _printable(first_line(exc))
    return None


def _os_reason(exc: OSError) -> str:
    text = os.strerror(exc.errno) if exc.errno else (exc.strerror or first_line(exc))
    return _printable(text[:1].lower() + text[1:])


def _chain(exc: BaseException) -> list[BaseException]:
    """The exceptions ``exc`` was raised from or while handling (a few levels)."""
    out: list[BaseException] = []
    todo = [exc.__cause__, exc.__context__]
    while todo and len(out) < 8:
        cause = todo.pop(0)
        if cause is not None and cause not in out:
            out.append(cause)
            todo += [cause.__cause__, cause.__context__]
    return out


def short_of_space(path: Path) -> bool:
    """Whether the filesystem of ``path`` has less room than a new version of it needs (the
    size of the file it replaces, at least a MiB): a write that came up short failed for
    want of space."""
    folder = path
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
        needed = path.stat().st_size if path.is_file() else 0
    except OSError:
        return False
    return free < max(needed, MIB)


def _printable(text: str, limit: int = 120) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:limit]


class AppendFile:
    """A file appended in whole pieces: ``write(data)`` puts all of ``data`` at the end or,
    when the disk takes only part of it, cuts the file back to where it was and raises
    (OSError), so a retry writes the piece again from its start. The file's other writers
    (a service's stderr in its train.log) may append too: O_APPEND puts every piece at the
    end. File-like enough for TensorBoard's RecordWriter (write, flush, close)."""

    def __init__(self, path: str | Path | None = None, *, fd: int | None = None, exclusive: bool = False) -> None:
        """Open ``path`` for appending (created if missing; ``exclusive``: it must not
        exist), or take the open descriptor ``fd`` (not closed by close())."""
        if fd is not None:
            self.fd, self._own = fd, False
        else:
            assert path is not None
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | (os.O_EXCL if exclusive else 0)
            self.fd, self._own = os.open(path, flags, 0o644), True

    def write(self, data: bytes) -> int:
        start = os.fstat(self.fd).st_size
        view = memoryview(data)
        try:
            while view:
                written = os.write(self.fd, view)
                if not written:  # (regular files take something or raise; never spin on one that does not)
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[written:]
        except BaseException:
            try:
                os.ftruncate(self.fd, start)  # frees what the piece took: it always works on a full disk
            except OSError:
                pass
            raise
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered: every write went to the file."""

    def close(self) -> None:
        if self._own and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1
