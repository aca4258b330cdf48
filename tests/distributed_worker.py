"""A rank of a tiny two-process (gloo) training, for tests/test_distributed.py: run as
``python tests/distributed_worker.py OUT.pt STEPS BATCH [nobn|fast]`` with torchrun's
variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) set, or without them as one process.

It trains the engine's GAN (gan.py) for STEPS steps on global batches that depend only on
the step, each rank on its share (world.py), and saves its weights and optimizer moments.
``nobn``: the nets without BatchNorm, where several processes must train exactly one
process's maths (on the CPU each rank normalises its share with its own statistics).
``fast``: the CPU's fast layers (channels-last, cpulayers), as a default CPU run has them;
after STEPS steps rank 0's weights blow up (NaN) and it rolls back to the state its guard
kept before the first step (no optimizer state yet), which every rank then takes (as
serving.py does after a rollback).
"""

from __future__ import annotations

import sys

import torch
from torch import nn

torch.set_num_threads(1)


def main(out: str, steps: int, batch_size: int, variant: str) -> None:
    if variant == "nobn":
        nn.BatchNorm2d = lambda *args, **kwargs: nn.Identity()  # type: ignore[misc]
    from tui_gan.core.config import TrainConfig
    from tui_gan.engine.gan import Gan
    from tui_gan.engine.guard import GoodState
    from tui_gan.engine.world import World, state_tensors

    config = TrainConfig(image_size=16, ngf=8, ndf=8, nz=16, batch_size=batch_size, channels=3, amp=False,
                         augment=True, channels_last=None if variant == "fast" else False)
    world, device = World.join(torch.device("cpu"))
    gan = Gan(config, device, world)
    data = torch.Generator().manual_seed(5)
    stats = []
    guard = GoodState()
    for step in range(steps):
        if step == 0:  # as the guard keeps its first state: before Adam has any
            guard.keep(step, gan.modules())
        whole = torch.rand(batch_size, 3, 16, 16, generator=data) * 2 - 1
        stats.append(gan.train_step(whole[world.rows(batch_size) or slice(None)]))
    weights = [p.detach().clone() for net in (gan.netG, gan.netD) for p in net.parameters()]
    moments = [t.clone() for t in state_tensors({"g": gan.optG, "d": gan.optD})]
    restored = []
    if variant == "fast":  # then rank 0's weights blow up and its guard rolls it back
        if world.is_main:
            with torch.no_grad():
                gan.netG.main[0].weight.fill_(float("nan"))
            guard.restore(gan.modules())
        world.broadcast_modules(gan.modules())
        restored = [t.clone() for t in state_tensors(gan.modules())]
    torch.save({"state": weights + moments, "restored": restored, "stats": torch.stack(stats),
                "noise": gan.noise_gen.get_state()}, out)
    world.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "")
