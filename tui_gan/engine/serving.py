"""The engine's requests, served at step boundaries: pausing and the one-shot requests
(snapshot, export, measure, latent walks, the shown generator, learning rates).

Across several processes (world.py) they are served only at the steps the ranks agreed
on (lockstep.py): rank 0 serves everything; the others apply what changes the training
(learning rates, pause, stop, rank 0's weights after a rollback) and produce nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..core import events as ev
from ..core.control import Requests
from ..pictures.grids import save_grid
from .interpolation import latent_walk, render_walk

if TYPE_CHECKING:
    from .engine import Engine


def serve_requests(engine: Engine) -> Iterator[Any]:
    """Handle the one-shot requests and pausing, at a step boundary (every step in one
    process; at the agreed steps across several). Pause and stop follow the states all
    ranks agreed on (lockstep.py), never rank 0's Control directly."""
    agreed = engine.lockstep
    if not agreed.due(engine.step, engine.batch_in_epoch == 0):
        return
    yield from _exchange_and_serve(engine)
    if not agreed.paused or agreed.stop_reason is not None:
        return
    if engine.world.is_main:
        yield engine._progress(time.perf_counter(), force_row=True)
        yield ev.Paused(engine.step, engine.control.pause_reason)
    while agreed.paused and agreed.stop_reason is None:
        agreed.wait_while_paused()
        yield from _exchange_and_serve(engine)
        if engine.world.is_main:  # the GPU at a glance goes on: what else uses it, now idle here
            yield from engine.gpu.readings()
    if agreed.stop_reason is None and engine.world.is_main:
        yield ev.Resumed(engine.step)
    engine.meter.restart_clocks()


def _exchange_and_serve(engine: Engine) -> Iterator[Any]:
    ctl, refusals = engine.control, []

    def refuse_a_doomed_resume(requests: Requests) -> None:
        """Rank 0, before it sends: a resume at learning rates that diverged MAX_ROLLBACKS
        times stays a pause (guard.py), judged with the rates this exchange applies."""
        if engine.lockstep.paused and not ctl.paused and ctl.stop_reason is None:
            refusal = engine.guard.refusal(_rates_after(engine.gan.lrs, engine.initial_lrs, requests))
            if refusal is not None:
                ctl.pause("diverged")
                refusals.append(refusal)

    requests, resync = engine.lockstep.exchange(engine.step, refuse_a_doomed_resume)
    if resync:  # the guard rolled rank 0 back: every rank takes its (restored) state
        modules = engine.gan.modules()
        if engine.world.is_main:
            engine.guard.good.restore(modules)
        engine.world.broadcast_modules(modules)
    yield from _serve_one_shots(engine, requests)
    for refusal in refusals:
        yield ev.EngineWarning(refusal)
        yield ev.Paused(engine.step, "diverged")


def _rates_after(lrs: tuple[float, float], initial: tuple[float, float], requests: Requests) -> tuple[float, float]:
    """The learning rates once ``requests`` are served (a change 'now'; a pending one waits),
    served in _serve_one_shots's order: set_lr, then reset_lr."""
    change = requests.lr
    if change is not None and change.now:
        lrs = (lrs[0] if change.lr_g is None else change.lr_g, lrs[1] if change.lr_d is None else change.lr_d)
    return initial if requests.reset_lr else lrs


def _serve_one_shots(engine: Engine, requests: Requests) -> Iterator[Any]:
    gan, main = engine.gan, engine.world.is_main
    if main:
        yield from _serve_views(engine, requests)
    if requests.lr is not None:
        yield gan.change_lrs(requests.lr.lr_g, requests.lr.lr_d, requests.lr.now)
    if requests.reset_lr is not None:  # the rates the run was started (or resumed) with
        yield gan.change_lrs(*engine.initial_lrs, requests.reset_lr)
    if main and requests.snapshot:
        yield from engine._snapshot()
    if main and requests.export:
        samples = engine._refresh_samples()
        path = save_grid(samples, engine.paths.export_grid(engine.step))
        yield engine._samples_event(samples)
        yield ev.Exported(engine.step, str(path))


def _serve_views(engine: Engine, requests: Requests) -> Iterator[Any]:
    """Rank 0's requests that change nothing in training: what viewers see and measure."""
    gan = engine.gan
    if requests.auto_pause != engine.auto_pause_shown:  # a state: every viewer hears of each change
        engine.auto_pause_shown = requests.auto_pause
        yield ev.AutoPauseSet(requests.auto_pause)
    if requests.measure:
        yield from engine._measure_quality()
    if requests.interpolate:
        started = time.perf_counter()
        walk = latent_walk(engine.config.nz, engine.config.seed + 2)
        frames = render_walk(gan.shown_generator, walk, engine.device)
        engine.meter.off_the_clock(started)
        yield ev.Interpolation(engine.step, engine.epoch, frames)
    if requests.show_average is not None:
        warning = gan.show_average(requests.show_average)
        yield ev.EngineWarning(warning) if warning else engine._samples_event()
