"""The divergence guard: roll back from non-finite losses; name the other failure modes
(symptoms.py).

The engine reads its loss averages once per progress interval (its one device sync); the
guard looks at those. A non-finite average means a step blew up: the engine stops
stepping, puts back the last good state kept here (models and optimizers, copied when
training starts and then at most every GOOD_STATE_INTERVAL seconds after a check that
found the losses and the weights finite), pauses and tells the user. After MAX_ROLLBACKS rollbacks at the same learning
rates it refuses to resume until they are changed, so it never loops.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import torch

from .symptoms import Symptoms, batch_spread

GOOD_STATE_INTERVAL = 30.0
MAX_ROLLBACKS = 3


def all_finite(tensors) -> bool:
    """One device sync for any number of tensors."""
    flags = [torch.isfinite(t).all() for t in tensors if t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def weights_finite(modules) -> bool:
    """Whether every floating tensor in the state of the models among ``modules`` is finite."""
    return all_finite([t for m in modules if isinstance(m, torch.nn.Module) for t in m.state_dict().values()])


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return copy.deepcopy(value)


class GoodState:
    """Copies (on the training device) of the models' and optimizers' state dicts."""

    def __init__(self, interval: float = GOOD_STATE_INTERVAL) -> None:
        self.interval = interval
        self.state: dict[str, Any] | None = None
        self.step: int | None = None
        self._taken = -math.inf

    def due(self) -> bool:
        return time.monotonic() - self._taken >= self.interval

    def keep(self, step: int, modules: dict[str, Any]) -> bool:
        """Copy ``modules`` (name -> model or optimizer) if every weight is finite."""
        if not weights_finite(modules.values()):
            return False
        self.state = {name: _clone(m.state_dict()) for name, m in modules.items()}
        self.step = step
        self._taken = time.monotonic()
        return True

    def restore(self, modules: dict[str, Any]) -> int | None:
        """Load the kept state into ``modules``; the step it was taken at, or None if none is kept."""
        if self.state is None:
            return None
        for name, m in modules.items():
            m.load_state_dict(_clone(self.state[name]))
        return self.step


class Rollbacks:
    """Counts rollbacks at the current learning rates."""

    def __init__(self, limit: int = MAX_ROLLBACKS) -> None:
        self.limit = limit
        self.count = 0
        self._lrs: tuple[float, float] | None = None

    def record(self, lrs: tuple[float, float]) -> int:
        if lrs != self._lrs:
            self.count, self._lrs = 0, lrs
        self.count += 1
        return self.count

    def blocked(self, lrs: tuple[float, float]) -> bool:
        """Whether resuming at ``lrs`` would only diverge again."""
        return self.count >= self.limit and lrs == self._lrs


class Guard:
    """The guard's parts for one run, applied to each progress read (see the module docstring)."""

    def __init__(self) -> None:
        self.good = GoodState()
        self.rollbacks = Rollbacks()
        self.symptoms = Symptoms()
        self.real_spread = math.nan
        """The data's spread across a batch (symptoms.batch_spread), for the collapse watch."""
        self._samples_checked: Any = None

    def start(self, step: int, modules: dict[str, Any], real: torch.Tensor) -> None:
        """A rollback target from the first step on; ``real``: a batch of the data (uint8)."""
        self.good.keep(step, modules)
        self.real_spread = batch_spread(real)

    def inspect(self, step: int, means: list[float], modules: dict[str, Any],
                lrs: tuple[float, float]) -> tuple[str | None, bool]:
        """Look at a read's averages (loss_D, loss_G, D(x), D(G(z1)), D(G(z2))) taken before
        ``step``: roll back from non-finite ones, warn about saturation, and now and then
        keep the current state as the last good one. Returns (a warning, whether training
        diverged and must pause)."""
        if not all(math.isfinite(v) for v in means):
            count = self.rollbacks.record(lrs)
            restored = self.good.restore(modules)
            what = ", ".join(f"{name} {v:g}" for name, v in zip(("loss_D", "loss_G"), means[:2]))
            where = (f"restored the state of step {restored}" if restored is not None
                     else "no good state was kept yet to restore")
            return (f"training diverged before step {step} ({what}): {where} and paused; "
                    f"lower the learning rates (l) before resuming (rollback {count} of {self.rollbacks.limit})",
                    True)
        warning = self.symptoms.update(step, *means[:4])
        if self.good.due():
            self.good.keep(step, modules)
        return warning, False

    def inspect_samples(self, step: int, images: Any) -> str | None:
        """Look at the newest fixed-noise samples (once each): all alike long into a run?"""
        if images is None or images is self._samples_checked:
            return None
        self._samples_checked = images
        return self.symptoms.samples(step, images, self.real_spread)

    def refusal(self, lrs: tuple[float, float]) -> str | None:
        """Why resuming at ``lrs`` is refused (it diverged there MAX_ROLLBACKS times), or None."""
        if not self.rollbacks.blocked(lrs):
            return None
        return (f"training diverged {self.rollbacks.count} times at learning rates G {lrs[0]:g} "
                f"D {lrs[1]:g}: set lower ones (l, apply now) before resuming")

    def make_savable(self, modules: dict[str, Any]) -> None:
        """Never write a checkpoint that cannot be trained from: non-finite weights are
        replaced by the last good state. Raises RuntimeError when none is kept."""
        if not weights_finite(modules.values()) and self.good.restore(modules) is None:
            raise RuntimeError("the weights are not finite and no good state is kept; nothing was saved")
