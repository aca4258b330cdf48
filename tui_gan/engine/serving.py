"""The engine's requests (core/contract.py), served at step boundaries: the states it
follows (pause, stop, auto_pause) and the one-shots it serves once (snapshot, export,
measure, latent walks, the shown generator, learning rates).

Where they come from depends on the world (world.py). One process takes them straight from
its Control at every step (Solo). Several take them in lock step (lockstep.py), at the steps
the ranks agreed on: rank 0 serves everything; the others apply what changes the training
(learning rates, pause, stop, rank 0's weights after a rollback) and produce nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Protocol

from ..core import events as ev
from ..core.contract import EngineEvent
from ..core.control import Control, Requests
from .gan import Gan
from .gpu_monitor import NoMonitor
from .guard import Guard
from .lockstep import Lockstep
from .meter import Meter
from .outputs import RunOutputs
from .position import Position
from .world import World

SOLO_PAUSED_POLL = 0.2
"""A paused run of one process looks at the GPU this often while no request comes."""


class Agreement(Protocol):
    """Where the requests come from: Solo (one process) or Lockstep (several)."""

    paused: bool
    stop_reason: str | None
    """The states as of the last exchange (Control may have moved on since)."""
    resync_pending: bool

    def due(self, step: int, epoch_start: bool) -> bool: ...
    def exchange(self, step: int, before_send: Callable[[Requests], None]) -> tuple[Requests, bool]: ...
    def wait_while_paused(self) -> None: ...


class Solo:
    """A world of one: the requests straight from its Control, at every step; nothing to
    exchange and no other rank to resynchronise."""

    resync_pending = False

    def __init__(self, control: Control) -> None:
        self.control = control
        self.paused = False
        self.stop_reason: str | None = None

    def due(self, step: int, epoch_start: bool) -> bool:
        return True

    def exchange(self, step: int, before_send: Callable[[Requests], None]) -> tuple[Requests, bool]:
        requests = self.control.take_requests()
        before_send(requests)
        self.paused, self.stop_reason = self.control.paused, self.control.stop_reason
        return requests, False

    def wait_while_paused(self) -> None:
        self.control.wake.wait(SOLO_PAUSED_POLL)


class Serving:
    """Serves one run's requests at its step boundaries (module docstring)."""

    def __init__(self, *, control: Control, world: World, at: Position, gan: Gan, guard: Guard, outputs: RunOutputs,
                 meter: Meter, gpu: NoMonitor, initial_lrs: tuple[float, float]) -> None:
        self.control, self.world, self.at = control, world, at
        self.gan, self.guard, self.outputs, self.meter, self.gpu = gan, guard, outputs, meter, gpu
        self.initial_lrs = initial_lrs
        """What reset_lr goes back to, the rates the run started (or resumed) with: set_lr
        changes config.lr_g and lr_d too (checkpoints keep the latest)."""
        self.agreement: Agreement = Lockstep(world, control) if world.distributed else Solo(control)
        self.auto_pause_shown = False
        """Whether the viewers were last told the run pauses at epoch ends (AutoPauseSet)."""

    @property
    def stop_reason(self) -> str | None:
        """A stop every rank agreed on: the loop ends at it."""
        return self.agreement.stop_reason

    @property
    def resync_pending(self) -> bool:
        """A rollback the other ranks have yet to take (the guard waits for it)."""
        return self.agreement.resync_pending

    def rolled_back(self) -> None:
        """The guard put rank 0's last good state back: the other ranks take it at the next exchange."""
        if self.world.distributed:
            self.agreement.resync_pending = True

    def serve(self) -> Iterator[EngineEvent]:
        """At a step boundary: the requests, then a pause for as long as every rank agrees on one."""
        agreed, main = self.agreement, self.world.is_main
        if not agreed.due(self.at.step, self.at.epoch_start):
            return
        yield from self._exchange_and_serve()
        if not agreed.paused or agreed.stop_reason is not None:
            return
        if main:
            yield self.outputs.progress(time.perf_counter(), force_row=True)
            yield ev.Paused(self.at.step, self.control.pause_reason)
        while agreed.paused and agreed.stop_reason is None:
            agreed.wait_while_paused()
            yield from self._exchange_and_serve()
            if main:  # the GPU at a glance goes on: what else uses it, now idle here
                yield from self.gpu.readings()
                yield from self.outputs.news()  # and a disk that fills, or takes writes again
        if agreed.stop_reason is None and main:
            yield ev.Resumed(self.at.step)
        self.meter.restart_clocks()

    def _exchange_and_serve(self) -> Iterator[EngineEvent]:
        ctl, refusals = self.control, []

        def refuse_a_doomed_resume(requests: Requests) -> None:
            """Rank 0, before it sends: a resume at learning rates that diverged MAX_ROLLBACKS
            times stays a pause (guard.py), judged with the rates this exchange applies."""
            if self.agreement.paused and not ctl.paused and ctl.stop_reason is None:
                refusal = self.guard.refusal(_rates_after(self.gan.lrs, self.initial_lrs, requests))
                if refusal is not None:
                    ctl.pause("diverged")
                    refusals.append(refusal)

        requests, resync = self.agreement.exchange(self.at.step, refuse_a_doomed_resume)
        if resync:  # the guard rolled rank 0 back: every rank takes its (restored) state
            modules = self.gan.modules()
            if self.world.is_main:
                self.guard.good.restore(modules)
            self.world.broadcast_modules(modules)
        yield from self._serve_one_shots(requests)
        for refusal in refusals:
            yield ev.EngineWarning(refusal)
            yield ev.Paused(self.at.step, "diverged")

    def _serve_one_shots(self, requests: Requests) -> Iterator[EngineEvent]:
        gan, main = self.gan, self.world.is_main
        if main:
            yield from self._serve_views(requests)
        if requests.lr is not None:
            yield gan.change_lrs(requests.lr.lr_g, requests.lr.lr_d, requests.lr.now)
        if requests.reset_lr is not None:
            yield gan.change_lrs(*self.initial_lrs, requests.reset_lr)
        if main and requests.snapshot:
            yield from self.outputs.snapshot()
        if main and requests.export:
            yield from self.outputs.export()

    def _serve_views(self, requests: Requests) -> Iterator[EngineEvent]:
        """Rank 0's requests that change nothing in training: what viewers see and measure."""
        if requests.auto_pause != self.auto_pause_shown:  # a state: every viewer hears of each change
            self.auto_pause_shown = requests.auto_pause
            yield ev.AutoPauseSet(requests.auto_pause)
        if requests.measure:
            yield from self.outputs.measure()
        if requests.interpolate:
            yield self.outputs.interpolate()
        if requests.show_average is not None:
            warning = self.gan.show_average(requests.show_average)
            yield ev.EngineWarning(warning) if warning else self.outputs.samples_event()
        if requests.show_classes is not None:
            warning = self.gan.show_classes(requests.show_classes)
            yield ev.EngineWarning(warning) if warning else self.outputs.samples_event()


def _rates_after(lrs: tuple[float, float], initial: tuple[float, float], requests: Requests) -> tuple[float, float]:
    """The learning rates once ``requests`` are served (a change 'now'; a pending one waits),
    in _serve_one_shots's order: set_lr, then reset_lr."""
    change = requests.lr
    if change is not None and change.now:
        lrs = (lrs[0] if change.lr_g is None else change.lr_g, lrs[1] if change.lr_d is None else change.lr_d)
    return initial if requests.reset_lr else lrs
