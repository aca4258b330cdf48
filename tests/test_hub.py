"""The service's hub and the client, in one process: a scripted engine served on a real
Unix socket, real viewers connecting to it."""

from __future__ import annotations

import os
import socket
import threading
import time

import numpy as np
import pytest

from tui_gan.core import events as ev
from tui_gan.core.errors import UserError
from tui_gan.service import hub as hub_module
from tui_gan.service import protocol
from tui_gan.service.client import Connection, RemoteRun
from tui_gan.service.runfiles import peer_uid

from .app_support import wait_for, wait_until


@pytest.fixture
def served(serve):
    return serve


class Stream:
    """A viewer's events, read in a thread."""

    def __init__(self, remote: RemoteRun):
        self.remote = remote
        self.events: list = []
        self.thread = threading.Thread(target=lambda: self.events.extend(remote.run()) or None, daemon=True)
        self.thread.start()

    def wait_for(self, kind, predicate=lambda e: True, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in list(self.events) if isinstance(e, kind) and predicate(e)]
            if found:
                return found[-1]
            time.sleep(0.01)
        raise AssertionError(f"no {kind.__name__}; got {[type(e).__name__ for e in self.events]}")


def test_two_viewers_see_the_run_so_far_and_what_either_asks_for(served):
    s = served()
    a = Stream(s.viewer())
    attached = a.wait_for(ev.Attached, lambda e: e.started is not None)
    b = Stream(s.viewer())
    late = b.wait_for(ev.Attached)
    assert len(late.started.history) == 120 and late.progress.step == late.started.step
    assert late.viewers == 2 and late.log[0][0].startswith("training on cpu")
    assert attached is not None

    a.remote.control.pause()
    assert b.wait_for(ev.Paused).step == s.engine.step and s.engine.control.paused
    b.remote.control.set_lr(1e-5, 2e-5)
    assert a.wait_for(ev.LrPending).lr_d == 2e-5
    a.remote.control.set_pause_at_epoch_end(True)
    assert b.wait_for(ev.AutoPauseSet).on and s.engine.control.pause_at_epoch_end
    assert b.remote.control.pause_at_epoch_end and b.remote.control.paused
    b.remote.control.toggle_pause()  # paused: toggling resumes
    assert a.wait_for(ev.Resumed)
    a.remote.control.show_average(False)  # --ema: the live generator's samples
    assert b.wait_for(ev.Samples).generator == "live"

    third = Stream(s.viewer())  # joins after all that: the same state
    snap = third.wait_for(ev.Attached)
    assert snap.paused is None and snap.auto_pause and snap.lr_pending.lr_g == 1e-5
    assert any("paused at step" in text for text, _ in snap.log)

    b.remote.control.stop("quit")
    for stream in (a, b, third):
        assert stream.wait_for(ev.Finished).reason == "quit"
    s.hub.close(flush_s=0.5)  # as the service's process hangs up when it ends: each stream ends, quietly
    for stream in (a, b, third):
        stream.thread.join(5)
        assert not stream.thread.is_alive()
        assert not any(isinstance(e, ev.Disconnected) for e in stream.events)


def test_a_viewer_of_another_version_is_refused_with_a_reason(served):
    s = served()
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(s.socket))
    sock.sendall(protocol.frame({"kind": "hello", "version": 99, "want": "view"}))
    conn = Connection(sock)
    header, _ = conn.next_frame()
    assert header["kind"] == "refused" and "protocol 99" in header["message"]
    with pytest.raises(EOFError):
        conn.next_frame()


@pytest.mark.parametrize("garbage", [
    b"\xff" * 64,  # a length far past the limit
    protocol.PREFIX.pack(5, 0) + b"{nope",
    protocol.frame({"kind": "request", "op": "format_disk"}),
    protocol.frame({"kind": "request", "op": "set_lr", "args": {"lr_g": -1}}),
    protocol.frame({"kind": "request", "op": "stop", "args": {"reason": 5}}),
    protocol.frame({"kind": "request", "op": "show_average", "args": {"on": "yes"}}),
    protocol.frame({"kind": "request", "op": [], "args": {}}),
    protocol.frame({"kind": "request", "op": "set_lr", "args": {"lr_g": 10 ** 400}}),
    protocol.PREFIX.pack(60000, 0) + b"[" * 60000,  # nested past the stack
    protocol.PREFIX.pack(55, 0) + b'{"kind":"x","arrays":[{"dtype":"<f8","shape":[1e999]}]}',
])
def test_a_bad_frame_closes_that_connection_only(served, garbage):
    s = served()
    good = Stream(s.viewer())
    good.wait_for(ev.Attached)
    conn, _ = Connection.open(str(s.socket), "view")
    conn.sock.sendall(garbage)
    frames = []
    with pytest.raises((EOFError, OSError)):
        while True:
            frames.append(conn.next_frame()[0])
    assert frames[-1]["kind"] == "refused"
    assert s.engine.control.stop_reason is None and not s.engine.control.paused
    good.remote.control.snapshot()  # the other viewer and the run carry on
    assert good.wait_for(ev.SnapshotSaved)


def test_a_silent_connection_is_closed(served, monkeypatch):
    monkeypatch.setattr(hub_module, "HELLO_TIMEOUT_S", 0.2)
    s = served()
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(s.socket))
    header, _ = Connection(sock).next_frame()
    assert header["kind"] == "refused" and "no hello" in header["message"]


def test_a_stalled_viewer_is_dropped_and_never_slows_the_engine(served):
    s = served(max_backlog=256 << 10)
    reader = Stream(s.viewer())
    stalled = socket.socket(socket.AF_UNIX)
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(str(s.socket))
    stalled.sendall(protocol.frame({"kind": "hello", "version": protocol.VERSION, "want": "view"}))
    wait_for(lambda: s.hub.watching == 2, "the stalled viewer to attach")
    grid = np.zeros((64, 3, 16, 16), np.uint8)  # 48 KiB a frame
    for step in range(3000):  # 140 MiB of latest values: each replaces the one before
        s.hub.publish(ev.Samples(step, 0, grid))
    reader.wait_for(ev.Samples, lambda e: e.step == 2999)
    wait_for(lambda: not s.hub.backlog, "the hub to have handled every sample")
    assert s.hub.watching == 2, "coalesced samples alone must not pile up"
    for epoch in range(40):  # kept, every one: these pile up (at the pace the reader reads)
        s.hub.publish(ev.EpochEnd(epoch, epoch, "p", "c", grid))
        reader.wait_for(ev.EpochEnd, lambda e, epoch=epoch: e.epoch == epoch)
    wait_for(lambda: s.hub.watching == 1, "the stalled viewer to be dropped")
    assert any("fell" in note and "behind" in note for note in s.notes)
    reader.wait_for(ev.EpochEnd, lambda e: e.epoch == 39)  # the reading viewer got everything
    assert len([e for e in reader.events if isinstance(e, ev.EpochEnd)]) == 40
    stalled.close()


def test_publish_leaves_encoding_and_sending_to_the_hubs_thread(served, monkeypatch):
    """The engine's thread never waits on a viewer: publishing only queues the event."""
    encoded_on = []
    real_frame = protocol.frame
    monkeypatch.setattr(protocol, "frame", lambda *a: encoded_on.append(threading.current_thread()) or real_frame(*a))
    s = served()
    stalled = socket.socket(socket.AF_UNIX)
    stalled.connect(str(s.socket))
    stalled.sendall(real_frame({"kind": "hello", "version": protocol.VERSION, "want": "view"}))
    wait_for(lambda: s.hub.watching == 1, "a viewer")
    publisher = threading.current_thread()
    for step in range(200):
        s.hub.publish(ev.Samples(step, 0, np.zeros((64, 3, 64, 64), np.uint8)))
    wait_for(lambda: len(encoded_on) > 3, "frames")
    assert publisher not in encoded_on and {t.name for t in encoded_on} == {"tui-gan-hub"}
    stalled.close()


def test_status_answers_once_and_hangs_up(served):
    s = served()
    Stream(s.viewer()).wait_for(ev.Attached)
    conn, status = Connection.open(str(s.socket), "status")
    assert status["kind"] == "status" and status["state"] == "running" and status["viewers"] == 1
    assert status["step"] == s.engine.step
    with pytest.raises((EOFError, OSError)):
        conn.next_frame()


def test_the_service_going_away_ends_the_stream_with_disconnected(served):
    s = served()
    stream = Stream(s.viewer())
    stream.wait_for(ev.Attached)
    s.hub.close(flush_s=0.1)  # gone without a Finished (as if killed)
    gone = stream.wait_for(ev.Disconnected)
    assert not gone.service_running and "--resume" in gone.message


def test_peer_credentials_name_this_user():
    a, b = socket.socketpair(socket.AF_UNIX)
    assert peer_uid(a) in (os.getuid(), None)
    a.close()
    b.close()


def test_failed_setup_reaches_the_viewer_as_a_user_error(served):
    s = served()
    remote = s.viewer()
    s.hub.fail("--data /nope: no such folder")
    with pytest.raises(UserError, match="no such folder"):
        list(remote.run())


async def test_the_app_over_a_socket_steers_and_detaches(served):
    from tui_gan.tui.app import TuiGanApp
    from tui_gan.tui.state import RunState

    s = served()
    other = Stream(s.viewer())
    other.wait_for(ev.Attached)
    app = TuiGanApp(s.viewer, run_name="demo")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.training_screen
        await wait_until(pilot, lambda: screen.state is RunState.TRAINING, what="attached")
        log = "\n".join(line.text for line in screen.event_log.lines)
        assert "attached to the run at step" in log and "1 other viewer" in log
        assert len(screen.panels.chart.steps) >= 120
        await pilot.press("space")
        await wait_until(pilot, lambda: screen.state is RunState.PAUSED, what="paused")
        other.wait_for(ev.Paused)
        await pilot.press("a")
        await wait_until(pilot, lambda: screen.view.auto_pause, what="auto-pause on")
        await pilot.press("d")
        await wait_until(pilot, lambda: not app.is_running, what="the app to leave")
    assert app.detached and s.engine.control.stop_reason is None  # the run goes on
    other.remote.control.resume()
    other.wait_for(ev.Resumed)


def test_one_event_larger_than_the_backlog_limit_still_reaches_everyone(served):
    s = served(max_backlog=64 << 10)
    stream = Stream(s.viewer())
    stream.wait_for(ev.Attached)
    walks = np.ones((48, 16, 3, 32, 32), np.uint8)  # 2.3 MiB: latent walks at 32x32
    s.hub.publish(ev.Interpolation(7, 0, walks))
    got = stream.wait_for(ev.Interpolation)
    assert got.frames.shape == walks.shape and s.hub.watching == 1


def test_a_viewer_attaching_as_the_run_ends_is_told_it_ended(served):
    s = served()
    s.engine.control.stop("quit")
    wait_for(lambda: s.hub.view.ended is not None, "the Finished")
    late = Stream(s.viewer())
    assert late.wait_for(ev.Finished).reason == "quit"
    _, status = Connection.open(str(s.socket), "status")
    assert status["state"] == "ending"
    s.hub.close(flush_s=0.5)
    late.thread.join(5)
    assert not any(isinstance(e, ev.Disconnected) for e in late.events)


def test_another_users_connection_gets_nothing(served, monkeypatch):
    monkeypatch.setattr(hub_module, "peer_uid", lambda sock: os.getuid() + 1)
    s = served()
    with pytest.raises(OSError):  # closed at once: no welcome, no refusal, no events
        Connection.open(str(s.socket), "view", timeout=5)
    assert s.hub.watching == 0 and s.engine.control.stop_reason is None
