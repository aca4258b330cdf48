"""The viewer's side of the socket: a run in a training service, shaped like an Engine.

``RemoteRun`` has what the app uses of an Engine: ``control`` (requests) and ``run()`` (the
event stream), so the app has one code path whether the engine runs in its own process
(tests, the benchmark) or in a service. Torch-free: the app process never imports torch.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

from ..core import events as ev
from ..core.contract import Event, RequestMethods, checked
from ..core.errors import UserError
from ..core.rundir import RunDir
from ..core.runview import RunView
from . import protocol
from .requests import request
from .runfiles import ServiceRecord, is_held

CONNECT_TIMEOUT_S = 5.0


class Connection:
    """A blocking, framed connection to one service."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = protocol.FrameReader()
        self._send_lock = threading.Lock()
        self._frames: list[tuple[dict[str, Any], list[Any]]] = []

    @classmethod
    def open(cls, path: str, want: str, timeout: float = CONNECT_TIMEOUT_S) -> tuple[Connection, dict[str, Any]]:
        """Connect, say hello, and return the connection and the service's answer (welcome,
        or for ``want="status"`` the status). OSError if nobody listens; UserError if the
        service refuses this viewer."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            conn = cls(sock)
            conn.send({"kind": "hello", "version": protocol.VERSION, "want": want})
            header, _ = conn.next_frame()
        except (EOFError, protocol.ProtocolError) as exc:  # a service on its way out, say
            sock.close()
            raise ConnectionError(f"no answer from the service ({exc})") from None
        except BaseException:
            sock.close()
            raise
        if header["kind"] == "refused":
            sock.close()
            raise UserError(str(header.get("message", "the service refused this viewer")))
        sock.settimeout(None)
        return conn, header

    def send(self, header: dict[str, Any]) -> bool:
        """Send one frame; False when the service has gone (its stream's end says so)."""
        try:
            with self._send_lock:
                self.sock.sendall(protocol.frame(header))
            return True
        except OSError:
            return False

    def next_frame(self) -> tuple[dict[str, Any], list[Any]]:
        """The next frame; EOFError when the service hangs up, ProtocolError on a bad one."""
        while not self._frames:
            data = self.sock.recv(1 << 20)
            if not data:
                raise EOFError("the service closed the connection")
            self._frames.extend(self.reader.feed(data))
        return self._frames.pop(0)

    def close(self) -> None:
        """Hang up; a thread blocked in ``next_frame`` returns with EOFError or OSError."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class RemoteControl(RequestMethods):
    """The control a viewer steers a service's run with: the contract's requests, checked
    here under the same rules as in the service and sent over the socket. What it knows of
    the run's state comes from ``view`` (the RemoteRun's, folded from the event stream)."""

    def __init__(self, conn: Connection, view: RunView) -> None:
        self.conn = conn
        self.view = view
        self.stop_reason: str | None = None
        self._asked: tuple[bool, int] | None = None
        """(pause?, view.pause_changes then): a pause or resume this viewer asked for and
        the run has not answered yet, so a second key press toggles what was asked."""

    def submit(self, op: str, **args: object) -> None:
        spec, _ = checked(op, args)  # RequestError before anything is sent
        if op in ("pause", "resume"):
            self._asked = (op == "pause", self.view.pause_changes)
        elif op == "stop":
            self.stop_reason = self.stop_reason or str(args.get("reason", "stopped"))
        self.conn.send(request(op, **args))

    @property
    def paused(self) -> bool:
        asked = self._asked
        if asked is not None and asked[1] == self.view.pause_changes:
            return asked[0]
        return self.view.paused is not None

    @property
    def pause_at_epoch_end(self) -> bool:
        return self.view.auto_pause

    @pause_at_epoch_end.setter
    def pause_at_epoch_end(self, on: bool) -> None:
        self.set_pause_at_epoch_end(on)


class RemoteRun:
    """A service's run as the app sees an Engine: ``control`` and ``run()``."""

    def __init__(self, conn: Connection, run_dir: RunDir) -> None:
        self.conn = conn
        self.run_dir = run_dir
        self.view = RunView()
        self.control = RemoteControl(conn, self.view)

    def run(self) -> Iterator[Event]:
        """The run's events, starting with an Attached; ends with Finished or Error, or with
        Disconnected when the connection ends first. UserError if the run failed to start."""
        progression: list[tuple[int, Any]] = []
        ended = False
        try:
            while True:
                header, arrays = self.conn.next_frame()
                kind = header["kind"]
                if kind == "epoch":
                    progression.append(_epoch_frame(header, arrays))
                elif kind == "event":
                    event = protocol.decode_event(header, arrays, progression)
                    progression = []
                    self.view.apply(event)
                    ended = ended or isinstance(event, (ev.Finished, ev.Error))
                    yield event
                elif kind in ("failed", "refused"):
                    raise UserError(str(header.get("message", "the training service refused")))
        except (EOFError, OSError, protocol.ProtocolError) as exc:
            if not ended:
                yield self._disconnected(exc)
        finally:
            self.conn.close()

    def _disconnected(self, exc: BaseException) -> ev.Disconnected:
        root = self.run_dir.root
        if is_held(self.run_dir):
            why = f" ({exc})" if isinstance(exc, protocol.ProtocolError) else ""
            return ev.Disconnected(f"lost the connection to the service{why}; the training goes on: "
                                   f"tui-gan attach {root}", service_running=True)
        return ev.Disconnected(f"the training service ended unexpectedly (see {self.run_dir.log}); "
                               f"resume it with: tui-gan --resume {root}", service_running=False)

    def close(self) -> None:
        self.conn.close()


def _epoch_frame(header: dict[str, Any], arrays: list[Any]) -> tuple[int, Any]:
    """One epoch-end sample grid of the run so far, from its ``epoch`` frame."""
    epoch = header.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or len(arrays) != 1 or arrays[0].ndim != 4:
        raise protocol.ProtocolError("malformed epoch frame")
    return epoch, arrays[0]


def connect_to_run(run_dir: RunDir, want: str = "view",
                   timeout: float = CONNECT_TIMEOUT_S) -> tuple[Connection, dict[str, Any]]:
    """Connect to the service that trains ``run_dir`` (UserError when none does)."""
    record = ServiceRecord.read(run_dir)
    if record is None or not is_held(run_dir):
        raise UserError(f"{run_dir.root}: no training service is running for this run")
    check_socket_is_ours(record.socket)
    try:
        return Connection.open(record.socket, want, timeout)
    except OSError as exc:
        raise UserError(f"{run_dir.root}: cannot reach its training service at {record.socket} "
                        f"({exc.strerror or exc})") from None


def check_socket_is_ours(path: str) -> None:
    """The record names a socket of ours in a private folder: an edited service.json must
    not send a viewer (and its requests) to another user's socket."""
    try:
        socket_info, folder_info = os.stat(path), os.stat(os.path.dirname(path) or ".")
    except OSError as exc:
        raise UserError(f"cannot reach the training service's socket {path} ({exc.strerror or exc})") from None
    if socket_info.st_uid != os.getuid() or folder_info.st_uid != os.getuid() or folder_info.st_mode & 0o077:
        raise UserError(f"the socket {path} is not in a private folder of yours; refusing to connect")


def wait_for_service(run_dir: RunDir, process: subprocess.Popen[bytes], give_up: threading.Event | None = None,
                     timeout: float = 120.0) -> RemoteRun | None:
    """Connect to the service just spawned as ``process``, once it listens. UserError with
    its own one-line error if it exits first (bad input found after torch loaded, say).
    None when ``give_up`` is set first (the viewer is leaving)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not (give_up is not None and give_up.is_set()):
        if process.poll() is not None:
            raise UserError(last_error(run_dir) or f"the training service exited ({process.returncode}); "
                            f"see {run_dir.log}")
        record = ServiceRecord.read(run_dir)
        if record is not None and process.pid in (record.pid, record.launcher) and record.state == "running":
            try:
                conn, _ = Connection.open(record.socket, "view")
                return RemoteRun(conn, run_dir)
            except OSError:
                pass  # not answering yet (or a record left by a service on its way out): retry
        time.sleep(0.05)
    if give_up is not None and give_up.is_set():
        return None
    raise UserError(f"the training service did not start within {timeout:.0f} s; see {run_dir.log}")


def last_error(run_dir: RunDir) -> str | None:
    """The one-line error a service printed last to its log, if any."""
    try:
        lines = run_dir.log.read_text(errors="replace").splitlines()[-50:]
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("tui-gan: error: "):
            return line.removeprefix("tui-gan: error: ")
    return None
