"""The CPU allocator tuning: freed memory is reused instead of being unmapped and
page-faulted in again (glibc only)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tui_gan.speed.allocator import _libc

# What these check is glibc's allocator and the kernel's page faults, the same on every Python: CI
# runs them on one (.ci/run).
pytestmark = pytest.mark.one_python

PROBE = """
import resource, sys
import numpy as np
from tui_gan.speed.allocator import keep_freed_memory
if sys.argv[1] == "tuned":
    assert keep_freed_memory() and keep_freed_memory()  # applied once, then remembered
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = np.ones(16 << 20, dtype=np.float32); del x  # 64 MiB, like a batch's activations
before = faults()
for _ in range(5):
    x = np.empty(16 << 20, dtype=np.float32); x.fill(1.0); del x
print(faults() - before)
"""


@pytest.mark.skipif(_libc() is None, reason="glibc's mallopt only")
def test_freed_activations_are_reused_without_page_faults():
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.split()[-1])

    untuned, tuned = faults("default"), faults("tuned")
    assert untuned >= 5 * 100, untuned  # each 64 MiB block mapped and faulted in afresh
    assert tuned < untuned / 10, (tuned, untuned)


def test_cpu_engines_tune_the_allocator(make_engine, monkeypatch):
    from tui_gan import speed

    calls = []
    monkeypatch.setattr(speed, "keep_freed_memory", lambda: calls.append(1) or True)
    list(make_engine(max_steps=1).run())
    assert calls == [1]
