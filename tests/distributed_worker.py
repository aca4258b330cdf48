"""A rank of a tiny two-process (gloo) training, for tests/test_distributed.py: run as
``python tests/distributed_worker.py OUT.pt STEPS BATCH [nobn|fast|syncbn|ghostN]`` with
torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) set, or without them as one
process.

It trains the engine's GAN (gan.py) for STEPS steps on global batches that depend only on
the step, each rank on its share (world.py), and saves its weights and optimizer moments.
``nobn``: the nets without BatchNorm, where several processes must train exactly one
process's maths (on the CPU each rank normalises its share with its own statistics).
``fast``: the CPU's fast layers (channels-last, cpulayers), as a default CPU run has them;
after STEPS steps rank 0's weights blow up (NaN) and it rolls back to the state its guard
kept before the first step (no optimizer state yet), which every rank then takes (as
serving.py does after a rollback).
``syncbn``: BatchNorm with SyncBatchNorm's maths on the CPU (torch's runs on GPUs only): the
statistics summed over the ranks by a differentiable all-reduce, whose backward sums the
gradients of the statistics over the ranks as SyncBatchNorm's backward does; in one process,
plain batch statistics. ``ghostN`` (one process): BatchNorm that normalises each of the N
shares of the batch on its own, as N ranks with per-rank BatchNorm do.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

torch.set_num_threads(1)


class StandInBatchNorm(nn.BatchNorm2d):
    """Training-mode BatchNorm over the rows of ``groups`` (slices of the batch) each on its
    own, with the sums taken across the ranks when ``synchronised``. Running statistics are
    left alone: the tests compare gradients and weights."""

    groups: list[slice] | None = None
    synchronised = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [x] if self.groups is None else [x[rows] for rows in self.groups]
        return torch.cat([self._normalise(part) for part in parts])

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        count = torch.tensor([x.numel() / x.size(1)], dtype=x.dtype)
        sums = torch.cat([x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)), count])
        if self.synchronised:
            from torch.distributed.nn.functional import all_reduce

            sums = all_reduce(sums)
        c = x.size(1)
        mean, square = sums[:c] / sums[-1], sums[c:2 * c] / sums[-1]
        shape = (1, c, 1, 1)
        scale = (self.weight / torch.sqrt(square - mean * mean + self.eps)).view(shape)
        return (x - mean.view(shape)) * scale + self.bias.view(shape)


def main(out: str, steps: int, batch_size: int, variant: str) -> None:
    if variant == "nobn":
        nn.BatchNorm2d = lambda *args, **kwargs: nn.Identity()  # type: ignore[misc]
    if variant == "syncbn" or variant.startswith("ghost"):
        nn.BatchNorm2d = StandInBatchNorm  # type: ignore[misc]
    from tui_gan.core.config import TrainConfig
    from tui_gan.engine.gan import Gan
    from tui_gan.engine.guard import GoodState
    from tui_gan.engine.world import World, state_tensors

    config = TrainConfig(image_size=16, ngf=8, ndf=8, nz=16, batch_size=batch_size, channels=3, amp=False,
                         augment=True, channels_last=None if variant == "fast" else False)
    world, device = World.join(torch.device("cpu"))
    StandInBatchNorm.synchronised = variant == "syncbn" and world.distributed
    if variant.startswith("ghost"):
        shares = int(variant[len("ghost"):])
        StandInBatchNorm.groups = [World(rank=r, size=shares).share(batch_size)[0] for r in range(shares)]
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
    grads = [p.grad.clone() for net in (gan.netG, gan.netD) for p in net.parameters()]  # the last step's
    moments = [t.clone() for t in state_tensors({"g": gan.optG, "d": gan.optD})]
    restored = []
    if variant == "fast":  # then rank 0's weights blow up and its guard rolls it back
        if world.is_main:
            with torch.no_grad():
                gan.netG.main[0].weight.fill_(float("nan"))
            guard.restore(gan.modules())
        world.broadcast_modules(gan.modules())
        restored = [t.clone() for t in state_tensors(gan.modules())]
    torch.save({"state": weights + moments, "restored": restored, "stats": torch.stack(stats), "grads": grads,
                "noise": gan.noise_gen.get_state()}, out)
    world.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "")
