"""The service's side of the socket: every viewer gets the run so far, then every event,
and any viewer may steer.

One thread (``Hub.serve_forever``) does all of it with non-blocking sockets and a selector:
it accepts viewers, encodes each event once and queues it for every viewer, writes as much
as each socket takes, and turns requests into calls on the run's Control. The engine's
thread only calls ``publish``: a deque append and a byte on a wake-up pipe, never a wait on
a viewer. A viewer that stops reading (Ctrl+Z) costs the service bounded memory: the
latest-value events (progress without a history row, samples, loading) replace their own
unsent predecessor (and go to the back of the queue, so steps never go backwards), and a
viewer whose queue still grows past ``max_backlog`` (plus its snapshot and the event at
hand) is dropped. Whatever a viewer sends, at worst that viewer is refused: the thread
serves on.
"""

from __future__ import annotations

import collections
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.contract import latest_value_key
from ..core.control import Control
from ..core.runview import RunView
from . import protocol
from .requests import apply_request, status_of
from .runfiles import peer_uid, private_fds

MAX_BACKLOG = 64 << 20
"""Bytes queued for one viewer before it is dropped: minutes of a stalled viewer's events
(coalesced, a run queues ~1 MiB per epoch at 64×64), well short of hurting the service."""
HELLO_TIMEOUT_S = 5.0


class Viewer:
    """One connection: its incoming frames and its queue of outgoing ones."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = protocol.FrameReader(max_header=protocol.MAX_REQUEST, max_body=0)
        self.queue: collections.deque[list[Any]] = collections.deque()  # [coalesce key or None, bytes]
        self.sending = memoryview(b"")
        self.backlog = 0
        self.want: str | None = None  # "view" or "status" after its hello
        self.since = time.monotonic()  # connected; then, once closing, since when
        self.closing = False  # close once the queue is written
        self.snapshot_bytes = 0  # its Attached: allowed on top of the backlog limit

    def push(self, data: bytes, key: str | None = None) -> None:
        if key is not None:
            for i, (queued_key, queued) in enumerate(self.queue):
                if queued_key == key:  # an unsent older value of the same kind: drop it, and
                    del self.queue[i]  # queue the new one last, after what came between
                    self.backlog -= len(queued)
                    break
        self.queue.append([key, data])
        self.backlog += len(data)

    def write(self) -> None:
        """Write what the socket takes now (BlockingIOError never escapes)."""
        while True:
            if not self.sending:
                if not self.queue:
                    return
                data = self.queue.popleft()[1]
                self.backlog -= len(data)
                self.sending = memoryview(data)
            try:
                sent = self.sock.send(self.sending)
            except BlockingIOError:
                return
            self.sending = self.sending[sent:]

    @property
    def idle(self) -> bool:
        return not self.sending and not self.queue


LOG_LINES = 200
"""Event-log lines a new viewer gets: more than a terminal shows, a short read."""


class Hub:
    def __init__(self, socket_path: str | Path, control: Control, run_dir: str, *,
                 note: Callable[[str], None] = lambda text: None, max_backlog: int = MAX_BACKLOG) -> None:
        self.socket_path = Path(socket_path)
        self.control = control
        self.run_dir = run_dir
        self.note = note
        """Where the hub's own lines go (the service's log)."""
        self.max_backlog = max_backlog
        self.view = RunView(log_lines=LOG_LINES)
        """The run so far, for the viewers that attach later and for ls."""
        self.viewers: dict[socket.socket, Viewer] = {}
        self._inbox: collections.deque[Any] = collections.deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector = selectors.DefaultSelector()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._closed = False
        self._flush_s = 2.0
        self.watching = 0
        """Viewers attached now (kept by the hub's thread; any thread may read it)."""

    # ----------------------------------------------------------------- the engine's side

    def start(self) -> None:
        """Listen on the socket (replacing a dead service's) and serve in a daemon thread."""
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        listener.listen(16)
        listener.setblocking(False)
        self._listener = listener
        for fd in (listener.fileno(), self._wake_r, self._wake_w):
            private_fds.add(fd)
        self._selector.register(listener, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self.serve_forever, name="tui-gan-hub", daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Events published and not yet handed to the viewers' queues."""
        return len(self._inbox)

    def publish(self, item: Any) -> None:
        """Queue an event for every viewer (from the engine's thread; never blocks)."""
        self._inbox.append(item)
        self._wake()

    def fail(self, message: str) -> None:
        """The run could not start: tell every viewer, as a one-line error."""
        self.publish(("failed", message))

    def close(self, flush_s: float = 2.0) -> None:
        """Give the viewers up to ``flush_s`` to receive what is queued, then hang up."""
        if self._closed:
            return
        self._closed = True
        self._flush_s = flush_s
        self._closing.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(flush_s + 1.0)
        try:
            self.socket_path.unlink()
        except OSError:
            pass

    def _wake(self) -> None:
        if self._wake_w < 0:
            return
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake-up is pending anyway) or closed

    # ----------------------------------------------------------------- the hub's thread

    def serve_forever(self) -> None:
        deadline = None
        while True:
            for key, mask in self._selector.select(timeout=0.5):
                self._ready(key.data, key.fileobj, mask)
            self._drain_inbox()
            self._expire_silent_viewers()
            if self._closing.is_set():
                # events published just before close() (the Finished) go out before the end
                self._drain_inbox()
                deadline = deadline or time.monotonic() + self._flush_s
                if all(v.idle for v in self.viewers.values()) or time.monotonic() > deadline:
                    break
        for viewer in list(self.viewers.values()):
            self._drop(viewer)
        self._selector.close()
        if self._listener is not None:
            private_fds.discard(self._listener.fileno())
            self._listener.close()
        for fd in (self._wake_r, self._wake_w):
            private_fds.discard(fd)
            os.close(fd)
        self._wake_w = -1

    def _ready(self, what: str, fileobj: Any, mask: int) -> None:
        if what == "accept":
            self._accept()
        elif what == "wake":
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
        else:
            viewer = self.viewers.get(fileobj)
            if viewer is None:
                return
            if mask & selectors.EVENT_READ:
                self._read(viewer)
            if mask & selectors.EVENT_WRITE and viewer.sock in self.viewers:
                self._flush(viewer)

    def _accept(self) -> None:
        if self._listener is None:  # closed meanwhile
            return
        try:
            sock, _ = self._listener.accept()
        except OSError:
            return
        uid = peer_uid(sock)
        if uid is not None and uid != os.getuid():
            sock.close()  # another user's process: not even an answer
            return
        sock.setblocking(False)
        private_fds.add(sock.fileno())
        viewer = Viewer(sock)
        self.viewers[sock] = viewer
        self._selector.register(sock, selectors.EVENT_READ, "viewer")

    def _read(self, viewer: Viewer) -> None:
        try:
            data = viewer.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(viewer)
            return
        try:
            for header, _ in viewer.reader.feed(data):
                if viewer.closing:
                    break  # refused already: the rest of what it says does not matter
                self._handle(viewer, header)
        except protocol.ProtocolError as exc:
            self._refuse(viewer, f"tui-gan service: {exc}")
        except Exception as exc:  # noqa: BLE001 - whatever a viewer's input breaks, only it is refused
            self.note(f"warning: a viewer's request failed ({type(exc).__name__}: {exc}); it was disconnected")
            self._refuse(viewer, f"tui-gan service: request failed ({type(exc).__name__})")

    def _handle(self, viewer: Viewer, header: dict[str, Any]) -> None:
        kind = header["kind"]
        if viewer.want is None:
            if kind != "hello":
                raise protocol.ProtocolError("the first frame must be a hello")
            self._greet(viewer, header)
        elif kind == "request" and viewer.want == "view":
            apply_request(self.control, header)
        else:
            raise protocol.ProtocolError(f"unexpected {kind!r} frame")

    def _greet(self, viewer: Viewer, hello: dict[str, Any]) -> None:
        if hello.get("version") != protocol.VERSION:
            self._refuse(viewer, f"this viewer speaks protocol {hello.get('version')!r} and the service "
                                 f"{protocol.VERSION}: use the same tui-gan version for both")
            return
        want = hello.get("want")
        welcome = {"kind": "welcome", "version": protocol.VERSION, "run_dir": self.run_dir, "pid": os.getpid()}
        if want == "status":
            viewer.want = want
            viewer.push(protocol.frame({**welcome, **status_of(self.view, self.control, self._watching())}))
            viewer.closing, viewer.since = True, time.monotonic()
        elif want == "view":
            viewer.want = want
            self.watching = self._watching()
            viewer.push(protocol.frame(welcome))
            for data in protocol.event_frames(self.view.attached(self.watching)):
                viewer.push(data)
            viewer.snapshot_bytes = viewer.backlog
            if self.view.ended is not None:  # attached during the last flush: the end too
                viewer.push(protocol.frame(*protocol.encode_event(self.view.ended)))
            self.note(f"viewer attached ({self.watching} watching)")
        else:
            raise protocol.ProtocolError(f"unknown hello 'want' {want!r}")
        self._flush(viewer)

    def _watching(self) -> int:
        return sum(v.want == "view" for v in self.viewers.values())

    def _drain_inbox(self) -> None:
        while self._inbox:
            item = self._inbox.popleft()
            if isinstance(item, tuple):  # ("failed", message)
                self._broadcast([protocol.frame({"kind": "failed", "message": item[1]})])
                continue
            try:
                self.view.apply(item)
                frames = protocol.event_frames(item)
            except Exception as exc:  # noqa: BLE001 - one event that cannot travel must not stop the others
                self.note(f"warning: a {type(item).__name__} event could not be sent to viewers ({exc})")
                continue
            self._broadcast(frames, latest_value_key(item))

    def _broadcast(self, frames: list[bytes], key: str | None = None) -> None:
        for viewer in list(self.viewers.values()):
            if viewer.want != "view":
                continue
            for data in frames:
                viewer.push(data, key)
            # on top of the limit: its snapshot and this event (walks at 256x256 are 151 MiB)
            if viewer.backlog > self.max_backlog + viewer.snapshot_bytes + sum(map(len, frames)):
                self.note(f"a viewer fell {viewer.backlog >> 20} MiB behind (stopped reading?) and was disconnected")
                self._drop(viewer)
            else:
                self._flush(viewer)

    def _flush(self, viewer: Viewer) -> None:
        try:
            viewer.write()
        except OSError:
            self._drop(viewer)
            return
        if viewer.idle and viewer.closing:
            self._drop(viewer)
            return
        events = selectors.EVENT_READ | (0 if viewer.idle else selectors.EVENT_WRITE)
        self._selector.modify(viewer.sock, events, "viewer")

    def _refuse(self, viewer: Viewer, message: str) -> None:
        viewer.queue.clear()
        viewer.backlog = 0
        viewer.push(protocol.frame({"kind": "refused", "message": message}))
        viewer.closing, viewer.since = True, time.monotonic()
        self._flush(viewer)

    def _expire_silent_viewers(self) -> None:
        """A connection that says no hello is refused; one that does not read its last
        frame (a refusal, a status) is closed anyway."""
        now = time.monotonic()
        for viewer in list(self.viewers.values()):
            if now - viewer.since <= HELLO_TIMEOUT_S:
                continue
            if viewer.closing:
                self._drop(viewer)
            elif viewer.want is None:
                self._refuse(viewer, "tui-gan service: no hello within 5 s")

    def _drop(self, viewer: Viewer) -> None:
        if self.viewers.pop(viewer.sock, None) is None:
            return
        try:
            self._selector.unregister(viewer.sock)
        except (KeyError, ValueError):
            pass
        private_fds.discard(viewer.sock.fileno())
        viewer.sock.close()
        if viewer.want == "view":
            self.watching = self._watching()
            self.note(f"viewer detached ({self.watching} watching)")
