"""Requests in lock step (engine/lockstep.py), with a stand-in for the broadcast: what rank
0 sends, a follower applies, and both act on the same agreed states."""

from __future__ import annotations

import torch

from tui_gan.core import events as ev
from tui_gan.core.control import Control, LrChange
from tui_gan.engine.lockstep import MAX_INTERVAL, Lockstep
from tui_gan.engine.serving import Solo
from tui_gan.engine.world import World


class Wire:
    """Rank 0's packet, handed to the followers' exchange as a broadcast would."""

    def __init__(self) -> None:
        self.packet: torch.Tensor | None = None


def ranks(wire: Wire, size: int = 2) -> list[Lockstep]:
    out = []
    for rank in range(size):
        world = World(rank=rank, size=size)

        def exchange(packet, rank=rank):
            if rank == 0:
                wire.packet = packet.clone()
                return packet
            packet.copy_(wire.packet)
            return packet

        world.exchange = exchange  # type: ignore[method-assign]
        out.append(Lockstep(world, Control()))
    return out


def test_followers_take_stop_pause_and_learning_rates_from_rank_0():
    wire = Wire()
    main, follower = ranks(wire)
    main.control.pause()
    main.control.set_lr(lr_g=1e-4, now=True)
    requests0, resync0 = main.exchange(10)
    requests1, resync1 = follower.exchange(10)
    assert main.paused and follower.paused and follower.control.paused
    assert requests0.lr == LrChange(1e-4, None, True) and requests1.lr == LrChange(1e-4, None, True)
    assert not resync0 and not resync1
    main.control.resume()
    main.control.stop("tui-gan stop")
    main.exchange(11)
    follower.exchange(11)
    assert not follower.paused and follower.stop_reason == "stopped by rank 0"
    assert main.stop_reason == "tui-gan stop"


def test_reset_lr_travels_with_when_it_applies():
    """now (True), at the epoch's end (False), or not asked (None): every rank serves the same."""
    wire = Wire()
    main, follower = ranks(wire)
    for asked in (True, False, None):
        if asked is not None:
            main.control.reset_lr(now=asked)
        requests0, _ = main.exchange(1)
        requests1, _ = follower.exchange(1)
        assert requests0.reset_lr is asked and requests1.reset_lr is asked


def test_only_what_changes_training_travels():
    """A snapshot or an export is rank 0's to serve; the followers get nothing of it."""
    wire = Wire()
    main, follower = ranks(wire)
    main.control.snapshot()
    main.control.export()
    requests0, _ = main.exchange(3)
    requests1, _ = follower.exchange(3)
    assert requests0.snapshot and requests0.export
    assert not requests1.snapshot and not requests1.export and requests1.lr is None


def test_a_request_after_rank_0_sent_waits_for_the_next_exchange():
    """Rank 0's live Control may change between exchanges; every rank acts on what was sent."""
    wire = Wire()
    main, follower = ranks(wire)
    main.exchange(5)
    follower.exchange(5)
    main.control.stop("late")  # arrives from a viewer after the packet went
    assert main.stop_reason is None and follower.stop_reason is None


def test_rank_0_sets_the_next_exchange_for_everyone_and_may_veto_a_resume():
    wire = Wire()
    main, follower = ranks(wire)
    main.exchange(0)
    follower.exchange(0)
    assert main.next_step == follower.next_step == 1  # no pace known yet: the next step
    main._clock = (main._clock[0] - 10.0, 0)  # 10 s for 100 steps: 0.1 s a step
    main.exchange(100)
    follower.exchange(100)
    assert main.next_step == follower.next_step == 102  # about 0.25 s of steps
    assert not follower.due(101, epoch_start=False) and follower.due(101, epoch_start=True)
    main._clock = (main._clock[0] + 9.0, 100)  # a very fast pace is capped
    main.exchange(200)
    assert main.next_step <= 200 + MAX_INTERVAL

    main.control.pause()
    main.exchange(300)
    follower.exchange(300)
    main.control.resume()
    main.exchange(301, before_send=lambda requests: main.control.pause("diverged"))
    follower.exchange(301)
    assert main.paused and follower.paused  # the veto went out with the packet


def test_a_rollback_on_rank_0_makes_every_rank_take_its_state():
    wire = Wire()
    main, follower = ranks(wire)
    main.resync_pending = True
    assert main.exchange(7)[1] and follower.exchange(7)[1]
    assert not main.resync_pending and not main.exchange(8)[1]


def test_a_world_of_one_takes_every_step_s_requests_from_its_control():
    solo = Solo(Control())
    assert all(solo.due(step, epoch_start=False) for step in range(5))
    solo.control.measure()
    solo.control.pause()
    requests, resync = solo.exchange(0, lambda requests: None)
    assert requests.measure and not resync and solo.paused and not solo.resync_pending


def test_a_run_of_one_process_never_touches_the_lock_step(make_engine, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a world of one used the lock step")

    monkeypatch.setattr(Lockstep, "__init__", refuse)
    monkeypatch.setattr(World, "exchange", refuse)
    engine = make_engine(max_steps=16)  # past an epoch's end
    engine.control.set_lr(lr_g=1e-4, now=True)
    events = list(engine.run())
    assert isinstance(events[-1], ev.Finished) and events[-1].reason == "max_steps"
    assert isinstance(engine.serving.agreement, Solo) and engine.gan.lr_g == 1e-4
