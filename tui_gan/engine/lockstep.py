"""Requests in lock step, across the processes of one run (a world of one takes its
requests from its Control directly: serving.py's Solo): every rank pauses, stops and changes
learning rates at the same step, because they all learn of it from rank 0 in one small
broadcast at a step they all know in advance.

Rank 0 owns the run's Control (the viewers' requests and the signals reach it); the other
ranks' Control objects only mirror what rank 0 sends. The one-shot requests that produce
files or events (snapshot, export, measure, latent walks, samples) stay on rank 0; only
what changes the training travels: stop, pause, learning rates, and "take rank 0's
weights" after the guard rolled back.

The packet goes every ``next_in`` steps, which rank 0 chooses (and sends with the packet)
so that requests are answered within about EXCHANGE_SECONDS; a paused run exchanges one
every PAUSED_POLL seconds, so no collective ever waits long enough to time out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import torch

from ..core.contract import PACKET_WIDTH, Requests, pack, unpack
from ..core.control import Control
from .world import World

EXCHANGE_SECONDS = 0.25
PAUSED_POLL = 0.5
MAX_INTERVAL = 64
_NEXT_IN, _RESYNC = 0, 1
"""The packet: [next_in, resync] and then the travelling requests (core/contract.pack)."""


class Lockstep:
    """When the ranks exchange requests, and what an exchange carries (module docstring)."""

    def __init__(self, world: World, control: Control) -> None:
        self.world = world
        self.control = control
        self.next_step = 0
        self.resync_pending = False
        """Rank 0: the others must take its weights at the next exchange (after a rollback)."""
        self.paused = False
        self.stop_reason: str | None = None
        """The states every rank agreed on at the last exchange (rank 0's Control may have
        moved on since: it acts on them at the next one)."""
        self._clock = (time.perf_counter(), 0)

    def due(self, step: int, epoch_start: bool) -> bool:
        """Whether requests are served before ``step``: at the agreed steps and at every
        epoch's start (so a pause at the epoch's end happens there)."""
        return step >= self.next_step or epoch_start

    def exchange(self, step: int, before_send: Callable[[Requests], None] = lambda requests: None) -> tuple[Requests, bool]:
        """At a due step (or while paused): the requests to serve here, and whether every
        rank must now take rank 0's weights (world.broadcast_modules). ``before_send(requests)``:
        rank 0's last word on its Control before it is sent (the guard refusing a resume)."""
        main = self.world.is_main
        requests = self.control.take_requests() if main else Requests()
        if main:
            before_send(requests)
        packet = torch.zeros(2 + PACKET_WIDTH, dtype=torch.float64)
        if main:  # the states as they are now: before_send may have changed them
            ctl = self.control
            now = replace(requests, pause=ctl.pause_reason if ctl.paused else None, stop=ctl.stop_reason)
            packet[:] = torch.tensor([self._interval(step), self.resync_pending, *pack(now)], dtype=torch.float64)
            self.resync_pending = False
        values = self.world.exchange(packet).tolist()
        sent = unpack(values[2:])
        if not main:
            self.control.follow(sent)
            requests = sent
        # what was sent, not rank 0's Control now (a stop's first reason stays, so it is the sent one)
        self.paused = sent.pause is not None
        self.stop_reason = self.control.stop_reason if sent.stop is not None else None
        self.next_step = step + int(values[_NEXT_IN])
        return requests, bool(values[_RESYNC])

    def _interval(self, step: int) -> int:
        """Steps until the next exchange: about EXCHANGE_SECONDS of training at the pace
        since the last one."""
        now = time.perf_counter()
        last_time, last_step = self._clock
        self._clock = (now, step)
        if step <= last_step:
            return 1
        per_step = (now - last_time) / (step - last_step)
        return max(1, min(MAX_INTERVAL, int(EXCHANGE_SECONDS / max(per_step, 1e-6))))

    def wait_while_paused(self) -> None:
        """Rank 0 waits up to PAUSED_POLL for a request; the others wait in the exchange."""
        if self.world.is_main:
            self.control.wake.wait(PAUSED_POLL)
