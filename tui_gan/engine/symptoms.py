"""Failure modes of GAN training, told apart from the numbers the engine already has.

The guard (guard.py) handles non-finite losses. Everything else that goes wrong leaves the
losses finite and training quietly useless; these watches look at each progress read's
averages (loss_D, loss_G, D(x), D(G(z1)), D(G(z2))) and at the fixed-noise samples, and
name one symptom with its usual fix once it has held for a few hundred steps:

- ``cap``: a loss pinned at BCE's cap. BCE clamps log() at -100, so a loss near 100 means
  D outputs exactly 0 or 1 where it is wrong, and no gradient flows (the learning rates
  are far too high: --lr 5 pins loss_D at 100 and loss_G at 0).
- ``zero``: a loss pinned at zero: one net wins outright (a learning rate of 0 for D lets
  G fool it completely).
- ``saturated``: D sure of itself (D(x) > 0.99, D(G(z)) < 0.01) or loss_G over 20: G gets
  almost no gradient (a learning rate of 0 for G, or D far stronger).
- ``fooled``: D rating generated images above real ones, for good: D has stopped learning
  (a learning rate of 0 for D: G learns to fool a fixed D).
- ``stuck``: D's verdict the same for real and generated images and not moving: D has
  stopped learning.
- ``collapsed``: G's samples all alike (one image), after they had been varied: their
  spread across the batch fell to a small fraction of the data's (a learning rate far too
  high for G saturates its output).
- ``frozen``: G's fixed-noise samples not changing at all from one refresh to the next:
  G is not learning (a learning rate of 0 for G).

Only the first symptom in that order is named at a read, so one cause gives one warning;
each warns once, and again only after it went away.
"""

from __future__ import annotations

import math
from typing import Any

#: BCE's cap (log clamped at -100): a loss within this much of 100 is pinned there.
CAP = 90.0
ZERO = 1e-3
SATURATED_D_X = 0.99
SATURATED_D_G_Z = 0.01
SATURATED_LOSS_G = 20.0
#: D(G(z)) above D(x) by this much for STEPS: D is losing for good.
FOOLED_MARGIN = 0.1
#: D(x) and D(G(z)) this close, and each moving less than this, for STEPS: D is stuck.
STUCK_SPREAD = 0.01
#: Steps a symptom must hold before it is named: long enough that the first steps of a
#: healthy run (where D(x) ≈ D(G(z)) ≈ 0.5 and G's samples are all alike) never count.
STEPS = 200
#: Fixed-noise samples whose per-pixel spread across the batch is under this fraction of
#: the data's are one image. An untrained generator's are too (0.1–7 of 255 at the
#: tutorial's init, against the data's ~70), so only a fall from above it counts.
COLLAPSED_FRACTION = 0.1
#: Samples that move less than this (of 255, the largest pixel change) between refreshes.
FROZEN_CHANGE = 0.5

ADVICE = {
    "cap": ("{which} is pinned at BCE's cap (100) since step {since}: D outputs exactly 0 or 1 where it is "
            "wrong, so no gradient flows; the learning rates are far too high: lower them (l) or restart lower"),
    "zero": ("{which} is pinned at zero since step {since}: {winner} wins outright and the other net learns "
             "nothing; check the learning rates (one may be 0 or far too low)"),
    "saturated": ("the discriminator is saturated since step {since} (D(x) {d_x:.3f}, D(G(z)) {d_g_z:.3f}, "
                  "loss_G {loss_g:.1f}): the generator gets almost no gradient; try a lower learning rate for D"),
    "fooled": ("D rates generated images above real ones since step {since} (D(x) {d_x:.3f}, D(G(z)) "
               "{d_g_z:.3f}): the discriminator has stopped learning; check its learning rate (l)"),
    "stuck": ("D gives real and generated images the same verdict ({d_x:.3f}) since step {since}: the "
              "discriminator has stopped learning; check its learning rate, or restart from a snapshot"),
    "frozen": ("the generator's samples have not changed since step {since}: it is not learning; check its "
               "learning rate (l)"),
    "collapsed": ("the generator's samples are all alike (one image) since step {since}: it has collapsed; "
                  "restart from a snapshot (or checkpoints/best.pt) with lower learning rates"),
}


def diagnose(loss_d: float, loss_g: float, d_x: float, d_g_z: float) -> tuple[str, str] | None:
    """The first symptom the averages show, as (symptom, which loss or ''), or None."""
    if max(loss_d, loss_g) >= CAP:
        return "cap", "loss_D" if loss_d >= loss_g else "loss_G"
    if min(loss_d, loss_g) < ZERO:
        return "zero", "loss_D" if loss_d <= loss_g else "loss_G"
    if (d_x > SATURATED_D_X and d_g_z < SATURATED_D_G_Z) or loss_g > SATURATED_LOSS_G:
        return "saturated", ""
    if d_g_z > d_x + FOOLED_MARGIN:
        return "fooled", ""
    if abs(d_x - d_g_z) < STUCK_SPREAD:
        return "stuck", ""
    return None


class Persistence:
    """Whether one symptom has held long enough to name, once per stretch."""

    def __init__(self, steps: int) -> None:
        self.steps = steps
        self.since: int | None = None
        self.warned = False

    def update(self, step: int, holds: bool) -> bool:
        """True once, when the symptom has held for ``steps`` steps."""
        if not holds:
            self.since, self.warned = None, False
            return False
        if self.since is None:
            self.since = step
        if not self.warned and step - self.since >= self.steps:
            self.warned = True
            return True
        return False


class Symptoms:
    """The watches of one run (see the module docstring)."""

    def __init__(self, steps: int = STEPS) -> None:
        self.steps = steps
        self._current: tuple[str, str] | None = None
        self._held = Persistence(steps)
        self._verdicts = (math.inf, -math.inf)  # the range of D(x), D(G(z)) since 'stuck' began
        self._collapse = Persistence(steps)
        self._frozen = Persistence(steps)
        self._previous: Any = None  # the last samples looked at
        self._varied = False  # the samples have been varied (above COLLAPSED_FRACTION) once

    def update(self, step: int, loss_d: float, loss_g: float, d_x: float, d_g_z: float) -> str | None:
        """A warning when a symptom of the averages read before ``step`` has held for long
        enough, else None."""
        found = diagnose(loss_d, loss_g, d_x, d_g_z)
        if found is not None and found[0] == "stuck" and not self._still(d_x, d_g_z, found == self._current):
            found = None  # the verdicts move: D is learning, they are just close
        if found != self._current:
            self._current, self._held = found, Persistence(self.steps)
        if found is None or not self._held.update(step, True):
            return None
        symptom, which = found
        winner = "the generator" if which == "loss_G" else "the discriminator"
        return ADVICE[symptom].format(which=which, since=self._held.since, winner=winner, d_x=d_x, d_g_z=d_g_z,
                                      loss_g=loss_g)

    def _still(self, d_x: float, d_g_z: float, continuing: bool) -> bool:
        """Whether D's verdicts have stayed within STUCK_SPREAD since 'stuck' began."""
        lo, hi = self._verdicts if continuing else (math.inf, -math.inf)
        self._verdicts = (min(lo, d_x, d_g_z), max(hi, d_x, d_g_z))
        return self._verdicts[1] - self._verdicts[0] < STUCK_SPREAD

    def samples(self, step: int, images: Any, real_spread: float) -> str | None:
        """A warning when the fixed-noise samples (uint8 N, C, H, W) have stayed all alike
        (spread under COLLAPSED_FRACTION of the data's, ``real_spread``) since they were
        varied, or (else) have not changed, for long enough."""
        alike = batch_spread(images) < COLLAPSED_FRACTION * real_spread
        self._varied = self._varied or not alike
        collapsed = alike and self._varied
        if self._collapse.update(step, collapsed):
            return ADVICE["collapsed"].format(since=self._collapse.since)
        previous, self._previous = self._previous, images
        if previous is None or previous.shape != images.shape:
            return None
        change = float((images.float() - previous.float()).abs().max())
        if self._frozen.update(step, change < FROZEN_CHANGE and not collapsed):
            return ADVICE["frozen"].format(since=self._frozen.since)
        return None


def batch_spread(images) -> float:
    """The mean over pixels of the standard deviation across a uint8 (N, C, H, W) batch."""
    return float(images.float().std(dim=0).mean()) if len(images) > 1 else math.nan
