"""What a training service leaves in the world: its lock, its record and its socket's path.

- ``service.lock`` in the run directory, held with ``flock`` by the one process that trains
  the run (the app's service or a ``--headless`` run). The kernel drops the lock when that
  process dies, however it dies, so a lock never outlives its service: a ``kill -9`` leaves
  nothing that blocks a resume.
- ``service.json`` in the run directory: pid, host, socket and state, written atomically at
  the start and again with the outcome when the service ends (in place on a full disk). A record that says
  "running" while nobody holds the lock is a service that died: the run was lost.
- The socket, in a private runtime directory: ``$TUI_GAN_RUNTIME_DIR``, else
  ``$XDG_RUNTIME_DIR/tui-gan``, else ``/tmp/tui-gan-<uid>``; created 0700 and refused when
  someone else owns it or others may open it. The name is a hash of the run directory,
  short enough for AF_UNIX's 108-byte limit.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import stat
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from socket import gethostname  # (a field below is named socket)
from typing import Any

from ..core.atomic import atomic_write_text
from ..core.errors import UserError
from ..core.rundir import RunDir
from ..core.runview import Outcome
from ..core.writes import write_failure

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are not locked there
    fcntl = None  # type: ignore[assignment]

SOCKET_PATH_LIMIT = 100  # AF_UNIX paths must fit in 108 bytes, with room to spare

private_fds: set[int] = set()
"""The service's lock, socket and wake-up pipe: closed in any child it forks (DataLoader
workers, with --stream), which would otherwise hold the run's lock after a kill -9 of
the service and keep a dropped viewer's connection open."""


def _close_private_fds() -> None:
    for fd in list(private_fds):
        try:
            os.close(fd)
        except OSError:
            pass
    private_fds.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_private_fds)


def runtime_dir() -> Path:
    """The private folder of this user's sockets (made 0700; UserError if it is not private)."""
    explicit = os.environ.get("TUI_GAN_RUNTIME_DIR")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if explicit:
        folder = Path(explicit)
    elif xdg and len(xdg) < SOCKET_PATH_LIMIT - 30:
        folder = Path(xdg) / "tui-gan"
    else:
        folder = Path(tempfile.gettempdir()) / f"tui-gan-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.lstat()
    except OSError as exc:
        raise UserError(f"cannot make the socket folder {folder} ({exc.strerror or exc}); "
                        "set TUI_GAN_RUNTIME_DIR to a private folder") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise UserError(f"the socket folder {folder} is not private to you (it must be a folder of yours with "
                        "mode 0700); fix it or set TUI_GAN_RUNTIME_DIR")
    return folder


def socket_path(run_dir: str | Path) -> Path:
    digest = hashlib.sha256(str(Path(run_dir).resolve()).encode()).hexdigest()[:20]
    return runtime_dir() / f"{digest}.sock"


def peer_uid(sock: socket.socket) -> int | None:
    """The user id of the process at the other end of a Unix socket, where the system says
    (Linux: SO_PEERCRED); None elsewhere, where the 0700 folder is the guard."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    import struct

    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


# ----------------------------------------------------------------------------- the record


@dataclass
class ServiceRecord:
    pid: int
    socket: str
    host: str = field(default_factory=gethostname)
    started: float = field(default_factory=time.time)
    state: str = "running"
    """running, then finished, stopped or failed."""
    reason: str = ""
    step: int = 0
    epoch: int = 0
    message: str = ""
    ended: float | None = None
    images_per_sec: float | None = None
    """The training speed of the session that ended (its Finished event's)."""
    launcher: int | None = None
    """With --nproc: the pid of the launcher that started this process (rank 0), the
    process the app spawned and waits on."""
    save_failed: str = ""
    """Why the final checkpoint could not be written ('' when it was)."""
    checkpoint: str | None = None
    """The newest complete checkpoint when the run ended (the final one, unless save_failed)."""
    checkpoint_step: int | None = None

    def end(self, outcome: Outcome, failure: str | None = None) -> None:
        """Record how the run ended; ``failure``: the service's own failure (its one line),
        which wins over what the run's events said."""
        self.state, self.reason, self.message = outcome.state, outcome.reason, outcome.message
        if failure is not None:
            self.state, self.message = "failed", failure
        self.step, self.epoch, self.ended = outcome.step, outcome.epoch, time.time()
        self.images_per_sec = outcome.images_per_sec
        self.save_failed, self.checkpoint, self.checkpoint_step = (outcome.save_failed, outcome.checkpoint,
                                                                   outcome.checkpoint_step)

    def write(self, run_dir: RunDir) -> str | None:
        """Write the record: None when it was written, else why not (a full disk, say: the
        service goes on, and says so). Atomically where the disk allows; on a full disk, over
        the old record in place, whose blocks are already the file's, so that a run stopped
        on a full disk is still recorded as what it is."""
        path = run_dir.service_record
        text = json.dumps(asdict(self), indent=1) + "\n"
        try:
            atomic_write_text(path, text)
            return None
        except Exception as exc:  # noqa: BLE001 - sorted just below: only a failed write is ours
            reason = write_failure(exc, path)
            if reason is None:
                raise
        try:
            _overwrite(path, text.encode())
            return None
        except OSError:
            return reason

    @classmethod
    def read(cls, run_dir: RunDir) -> ServiceRecord | None:
        """The run's record; None when there is none or it cannot be read as one."""
        try:
            data: Any = json.loads(run_dir.service_record.read_text())
            known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            record = cls(**known)
            int(record.pid), str(record.socket)
            return record
        except Exception:  # noqa: BLE001 - any unreadable record is no record
            return None


def _overwrite(path: Path, data: bytes) -> None:
    """Replace an existing file's content in place, only where it fits in the blocks the file
    has (OSError otherwise, the file untouched): no new space is needed."""
    fd = os.open(path, os.O_WRONLY)
    try:
        if len(data) > os.fstat(fd).st_blocks * 512:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = memoryview(data)
        while view:
            written = os.pwrite(fd, view, len(data) - len(view))
            if not written:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            view = view[written:]
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- the lock


class RunLock:
    """The run's one-writer lock, held for the life of the process that trains it."""

    def __init__(self, run_dir: RunDir) -> None:
        self.run_dir = run_dir
        self._fd: int | None = None

    def acquire(self, attempts: int = 10) -> None:
        """Take the lock, or UserError naming the service that holds it. Retries briefly: a
        ``tui-gan ls`` probing the lock holds it for a moment."""
        self.run_dir.check_writable()
        if fcntl is None:
            return
        fd = os.open(self.run_dir.service_lock, os.O_RDWR | os.O_CREAT, 0o600)
        for attempt in range(attempts):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                private_fds.add(fd)
                return
            except BlockingIOError:
                time.sleep(0.1 * (attempt < attempts - 1))
            except OSError:  # a filesystem without locks (some network mounts): train unlocked
                os.close(fd)
                return
        os.close(fd)
        raise already_running(self.run_dir)

    def release(self) -> None:
        if self._fd is not None:
            private_fds.discard(self._fd)
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None


def already_running(run_dir: RunDir) -> UserError:
    record = ServiceRecord.read(run_dir)
    by_whom = f" (process {record.pid} on {record.host})" if record else ""
    root = run_dir.root
    return UserError(f"{root} is being trained already{by_whom}; watch it with 'tui-gan attach {root}' "
                     f"or stop it with 'tui-gan stop {root}'")


def is_held(run_dir: RunDir) -> bool:
    """Whether a live process trains this run (holds its lock)."""
    if fcntl is None or not run_dir.service_lock.exists():
        return False
    try:
        fd = os.open(run_dir.service_lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def check_not_running(run_dir: RunDir) -> None:
    """UserError when a service trains ``run_dir`` now (a second writer is refused)."""
    if is_held(run_dir):
        raise already_running(run_dir)
