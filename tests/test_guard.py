"""The divergence guard: rollback on non-finite losses, no endless loop, no non-finite
checkpoint, and the saturated-discriminator warning."""

from __future__ import annotations

import io
import math

import torch

from tui_gan.core import events as ev
from tui_gan.engine.gan import Gan
from tui_gan.engine.guard import GoodState, Rollbacks
from tui_gan.engine.symptoms import Symptoms

from .conftest import EngineThread


def _blow_up_at(engine, monkeypatch, steps: set[int]):
    """From the given steps on (counted from 1), a step ruins the weights and its losses."""
    real_step = Gan.train_step

    def step(gan, real, classes=None):
        out = real_step(gan, real, classes)
        if engine.step + 1 in steps:
            with torch.no_grad():
                for p in engine.gan.netG.parameters():
                    p.fill_(math.nan)
            return torch.full_like(out, math.nan)
        return out

    monkeypatch.setattr(Gan, "train_step", step)


def _finite(module) -> bool:
    return all(torch.isfinite(t).all() for t in module.state_dict().values() if t.is_floating_point())


def test_non_finite_losses_roll_back_pause_and_tell(make_engine, engine_thread, monkeypatch):
    engine = make_engine(epochs=50)
    _blow_up_at(engine, monkeypatch, {6})
    t: EngineThread = engine_thread(engine)
    warning = t.wait_for(ev.EngineWarning, predicate=lambda e: "diverged" in e.message)
    assert "before step 6" in warning.message and "restored the state of step" in warning.message
    assert "lower the learning rates" in warning.message
    paused = t.wait_for(ev.Paused)
    assert paused.reason == "diverged" and engine.step == 6
    assert _finite(engine.gan.netG) and _finite(engine.gan.netD)  # the kept state is back
    for p in engine.gan.optG.state_dict()["state"].values():
        assert torch.isfinite(p["exp_avg"]).all()

    engine.control.resume()  # a single rollback: resuming is allowed
    t.wait_for(ev.Resumed)
    t.wait_for(ev.Progress, predicate=lambda e: e.step >= 8)
    engine.control.stop("test")
    finished = [e for e in t.drain() if isinstance(e, ev.Finished)][0]
    state = torch.load(finished.checkpoint_path, weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["generator"].values() if v.is_floating_point())


def test_repeated_divergence_stays_paused_until_the_learning_rate_changes(make_engine, engine_thread, monkeypatch):
    engine = make_engine(epochs=50)
    _blow_up_at(engine, monkeypatch, {4, 6, 8})
    t: EngineThread = engine_thread(engine)
    for _ in range(3):
        t.wait_for(ev.Paused, predicate=lambda e: e.reason == "diverged")
        engine.control.resume()
    refused = t.wait_for(ev.EngineWarning, predicate=lambda e: "before resuming" in e.message)
    assert "diverged 3 times" in refused.message
    t.wait_for(ev.Paused, predicate=lambda e: e.reason == "diverged")
    step = engine.step
    engine.control.set_lr(1e-5, 1e-5, now=True)
    t.wait_for(ev.LrApplied)
    engine.control.resume()
    t.wait_for(ev.Resumed)
    t.wait_for(ev.Progress, predicate=lambda e: e.step > step + 2)
    assert engine.gan.lr_g == 1e-5


def test_a_reset_to_the_rates_that_diverged_is_refused_like_a_plain_resume(make_engine, monkeypatch):
    """After MAX_ROLLBACKS rollbacks, a resume sent with set_lr (now) and reset_lr (now) is
    judged at the rates the exchange leaves: reset_lr's, served after set_lr's."""
    engine = make_engine(epochs=50)
    _blow_up_at(engine, monkeypatch, {4, 6, 8})
    pauses, refusals = 0, []
    for event in engine.run():
        if isinstance(event, ev.EngineWarning) and "set lower ones" in event.message:
            refusals.append(engine.step)
        if isinstance(event, ev.Paused) and event.reason == "diverged":
            pauses += 1
            if pauses == 3:  # diverged 3 times at the starting rates
                engine.control.set_lr(1e-5, 1e-5, now=True)
                engine.control.reset_lr(now=True)
            elif pauses == 4:  # refused: now lower rates alone
                engine.control.set_lr(1e-5, 1e-5, now=True)
            engine.control.resume()
        if isinstance(event, ev.Resumed) and pauses == 4:
            engine.control.stop("test")
    assert pauses == 4 and refusals == [8]
    assert engine.gan.lrs == (1e-5, 1e-5)


def test_headless_stops_with_the_good_state_saved(make_engine, monkeypatch):
    from tui_gan.service.printer import Printer
    from tui_gan.service.training import run_headless

    engine = make_engine(epochs=50)
    _blow_up_at(engine, monkeypatch, {5})
    out = io.StringIO()
    assert run_headless(engine, Printer([out], log_every=60)) == 1
    text = out.getvalue()
    assert "warning: training diverged before step 5" in text and "finished (diverged)" in text
    state = torch.load(engine.run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["generator"].values() if v.is_floating_point())


def test_a_conditional_run_rolls_back_its_class_embeddings_too(make_engine, monkeypatch):
    """The guard keeps and restores every weight of the conditional nets (the per-class
    norms and the projection): the saved state after a blow-up is finite throughout."""
    from tui_gan.service.printer import Printer
    from tui_gan.service.training import run_headless

    engine = make_engine(epochs=50, conditional=True)
    _blow_up_at(engine, monkeypatch, {5})
    out = io.StringIO()
    assert run_headless(engine, Printer([out], log_every=60)) == 1
    assert "warning: training diverged before step 5" in out.getvalue()
    assert type(engine.gan.netG).__name__ == "ConditionalGenerator" and _finite(engine.gan.netG)
    state = torch.load(engine.run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert any("gain" in k for k in state["generator"]) and any("embed" in k for k in state["discriminator"])
    for net in ("generator", "discriminator"):
        assert all(torch.isfinite(v).all() for v in state[net].values() if v.is_floating_point())


def test_a_non_finite_checkpoint_is_never_written(make_engine):
    engine = make_engine(max_steps=3)
    list(engine.run())
    with torch.no_grad():
        next(engine.gan.netG.parameters()).fill_(math.inf)
    path = engine.outputs.save(engine.run_dir / "checkpoints" / "again.pt")
    state = torch.load(path, weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["generator"].values() if v.is_floating_point())
    kept = engine.guard.good.state["generator"]
    assert all(torch.equal(state["generator"][k], kept[k]) for k in kept)  # the last good weights


def test_good_state_refuses_non_finite_weights_and_restores():
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters())
    keeper = GoodState(interval=0.0)
    assert keeper.restore({"m": model}) is None
    assert keeper.keep(7, {"m": model, "o": opt})
    before = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.fill_(math.nan)
    assert not keeper.keep(8, {"m": model, "o": opt})  # a poisoned state is not kept
    assert keeper.restore({"m": model, "o": opt}) == 7
    assert torch.equal(model.weight, before)


def test_rollbacks_block_only_at_the_same_learning_rates():
    r = Rollbacks(limit=2)
    assert r.record((1e-3, 1e-3)) == 1 and not r.blocked((1e-3, 1e-3))
    assert r.record((1e-3, 1e-3)) == 2 and r.blocked((1e-3, 1e-3))
    assert not r.blocked((1e-4, 1e-3))
    assert r.record((1e-4, 1e-3)) == 1  # new rates: counted afresh


def test_saturation_warns_once_per_stretch():
    watch = Symptoms(steps=100)
    assert watch.update(0, 0.01, 5.0, 0.995, 0.005) is None
    assert watch.update(50, 0.01, 5.0, 0.995, 0.005) is None
    message = watch.update(100, 0.01, 6.0, 0.999, 0.002)
    assert message and "saturated since step 0" in message and "lower learning rate for D" in message
    assert watch.update(150, 0.01, 6.0, 0.999, 0.002) is None  # once
    assert watch.update(160, 1.0, 1.0, 0.7, 0.3) is None  # recovered
    assert watch.update(170, 0.5, 60.0, 0.9, 0.1) is None  # loss_G near BCE's clamp alone counts
    assert watch.update(270, 0.5, 60.0, 0.9, 0.1)


def test_a_blow_up_just_before_an_epoch_end_is_caught_there(make_engine, engine_thread, monkeypatch):
    engine = make_engine(epochs=50, progress_interval=3600.0)  # no periodic progress read
    _blow_up_at(engine, monkeypatch, {14})  # the epoch's last step (14 a epoch)
    t: EngineThread = engine_thread(engine)
    warning = t.wait_for(ev.EngineWarning, predicate=lambda e: "diverged" in e.message)
    assert "before step 14" in warning.message
    t.wait_for(ev.Paused, predicate=lambda e: e.reason == "diverged")
    assert _finite(engine.gan.netG)
