"""Failure modes named within a few hundred steps: the watches' rules, and runs that
provoke each symptom the way users do (a huge learning rate, one of 0)."""

from __future__ import annotations

import re

import pytest
import torch

from tui_gan.core import events as ev
from tui_gan.engine.symptoms import ADVICE, Symptoms, batch_spread, diagnose

# What these check is the watches' rules and the runs that provoke them: torch's maths, the same
# on every Python: CI runs them on one (.ci/run).
pytestmark = pytest.mark.one_python


@pytest.mark.parametrize(("means", "expected"), [
    ((100.0, 0.0, 1.0, 1.0), ("cap", "loss_D")),  # --lr 5: D says 'real' to everything
    ((0.5, 95.0, 0.9, 0.0), ("cap", "loss_G")),
    ((8.0, 0.0004, 0.2, 0.9996), ("zero", "loss_G")),
    ((0.0002, 9.0, 0.9999, 0.0001), ("zero", "loss_D")),
    ((0.01, 6.0, 0.995, 0.004), ("saturated", "")),
    ((0.3, 25.0, 0.9, 0.1), ("saturated", "")),
    ((3.0, 0.1, 0.45, 0.9), ("fooled", "")),
    ((1.386, 0.693, 0.5, 0.5), ("stuck", "")),
    ((1.1, 1.0, 0.62, 0.33), None),  # a healthy read
])
def test_diagnose_names_the_first_symptom(means, expected):
    assert diagnose(*means) == expected


def test_a_symptom_is_named_once_after_it_held_for_its_steps():
    watch = Symptoms(steps=100)
    assert watch.update(0, 100.0, 0.0, 1.0, 1.0) is None
    assert watch.update(60, 100.0, 0.0, 1.0, 1.0) is None
    message = watch.update(100, 100.0, 0.0, 1.0, 1.0)
    assert message.startswith("loss_D is pinned at BCE's cap (100) since step 0") and "lower them" in message
    assert watch.update(150, 100.0, 0.0, 1.0, 1.0) is None  # once
    assert watch.update(160, 1.0, 1.0, 0.6, 0.3) is None  # gone
    assert watch.update(170, 0.01, 6.0, 0.995, 0.004) is None  # another symptom starts afresh
    assert "saturated since step 170" in watch.update(270, 0.01, 6.0, 0.995, 0.004)


def test_close_verdicts_that_move_are_not_stuck():
    watch = Symptoms(steps=100)
    for step in range(0, 400, 20):  # D(x) ~ D(G(z)) near the equilibrium, but moving
        v = 0.5 + 0.02 * ((step // 20) % 3)
        assert watch.update(step, 1.38, 0.7, v, v + 0.005) is None
    for step in range(400, 520, 20):  # frozen at one value: stuck
        message = watch.update(step, 1.38, 0.7, 0.5, 0.5)
    assert "same verdict (0.500) since step 400" in message


def test_samples_frozen_or_collapsed():
    watch = Symptoms(steps=100)
    rng = torch.Generator().manual_seed(0)
    varied = lambda: torch.randint(0, 256, (16, 3, 8, 8), generator=rng, dtype=torch.uint8)  # noqa: E731
    real = batch_spread(varied())
    same = varied()
    messages = [watch.samples(step, same.clone(), real) for step in range(0, 140, 20)]
    assert "have not changed since step 20" in messages[-1]  # compared from the second one on
    watch = Symptoms(steps=100)
    one = varied()[:1].expand(16, -1, -1, -1)
    young = [watch.samples(step, one + (step // 20) % 2, real) for step in range(0, 300, 20)]
    assert young == [None] * 15  # all alike (but changing) before they were ever varied: normal
    assert watch.samples(300, varied(), real) is None
    late = [watch.samples(step, one + (step // 20) % 2, real) for step in range(320, 440, 20)]
    assert "all alike (one image) since step 320" in late[-1]


def symptom_of(message: str) -> str | None:
    """Which symptom's advice ``message`` is: its template with every field a wildcard."""
    for symptom, template in ADVICE.items():
        pattern = ".+?".join(re.escape(part) for part in re.split(r"\{[^}]*\}", template))
        if re.fullmatch(pattern, message):
            return symptom
    return None


def test_each_symptoms_advice_is_told_apart():
    """symptom_of names only the advice it was given, so each provoking run below checks its own."""
    fields = {"which": "loss_G", "since": 120, "winner": "D", "d_x": 0.5, "d_g_z": 0.25, "loss_g": 9.0}
    assert {symptom: symptom_of(template.format(**fields)) for symptom, template in ADVICE.items()} == \
        {symptom: symptom for symptom in ADVICE}
    assert symptom_of("loss_G is pinned somewhere else") is None


@pytest.mark.parametrize(("settings", "symptom"), [
    ({"lr_g": 5.0, "lr_d": 5.0}, "cap"),
    ({"lr_d": 1e-12}, "fooled"),
    ({"lr_g": 1e-12, "sample_interval": 0.2}, "frozen"),
    ({"lr_g": 1e-12}, "saturated"),
    ({"lr_g": 1.0, "sample_interval": 0.2}, "collapsed"),
])
def test_a_run_that_provokes_a_symptom_is_warned(make_engine, settings, symptom):
    engine = make_engine(epochs=200, **settings)
    found = None
    for event in engine.run():
        if isinstance(event, ev.EngineWarning) and symptom_of(event.message) == symptom:
            found = engine.step
            engine.control.stop("found")
        elif engine.step >= 1500:
            engine.control.stop("not found")
    assert found is not None and found <= 1000, f"no '{symptom}' warning within 1500 steps"


def test_a_healthy_run_gets_no_warning(make_engine):
    engine = make_engine(epochs=60, sample_interval=0.2, max_steps=800)
    assert [e.message for e in engine.run() if isinstance(e, ev.EngineWarning)] == []
