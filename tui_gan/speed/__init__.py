"""CPU speed layers: faster kernels for the tutorial's layers, and allocator tuning.

``apply`` is the one entry point, called by the GAN step (engine/gan.py) when it builds
its nets: it decides the memory layout, swaps in the faster CPU layers (cpulayers.py,
winograd.py) and tunes the process's allocator (allocator.py). None of it changes the
maths or the checkpoints' keys. Measured numbers: docs/benchmark.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import cpulayers
from .allocator import keep_freed_memory


@dataclass(frozen=True)
class SpeedChoice:
    """What ``apply`` chose for a run."""

    channels_last: bool
    """Models (and so batches) in channels-last memory layout."""
    cpu_layers: bool
    """cpulayers' autograd Functions stand in for stock layers (they need D's parameters
    marked as not requiring gradients during G's pass, see Gan.train_step)."""


def apply(netG: nn.Module, netD: nn.Module, config, device: torch.device, bf16: bool = False) -> SpeedChoice:
    """Make ``netG`` and ``netD`` (in place) and this process fast for ``config`` on ``device``.

    - On a CPU, malloc keeps freed memory, so activations reuse their pages step after step
      (about 1.14× at 64×64 on the 2-core test CPU). This happens as the nets are built,
      while the data may still be loading: every training step comes after it.
    - Channels-last layout: ``config.channels_last``, or by default on CPUs, where oneDNN's
      convolutions measured faster in it (about 1.14×); off elsewhere, not yet measured.
    - cpulayers (with Winograd for 64+ channels): on with channels-last on a CPU in fp32;
      left out in ``bf16`` and with --compile (which makes its own kernels). Where the two
      compete (a CPU with bf16 units), bf16 wins: on an AMX CPU the tutorial config ran at
      1.88x the tutorial loop in bf16 against 1.28x in fp32 with these layers (issue 18).
    - CUDA: cuDNN's autotuner as ``config.cudnn_benchmark`` says.
    """
    on_cpu = device.type == "cpu"
    if on_cpu:
        keep_freed_memory()
    channels_last = config.channels_last if config.channels_last is not None else on_cpu
    if channels_last:
        for net in (netG, netD):
            net.to(memory_format=torch.channels_last)
    cpu_layers = channels_last and on_cpu and not config.compile and not bf16
    if cpu_layers:
        cpulayers.adopt(netG)
        cpulayers.adopt(netD)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = config.cudnn_benchmark
    return SpeedChoice(channels_last=channels_last, cpu_layers=cpu_layers)
