"""The DCGAN tutorial's Generator and Discriminator, generalised to 16..256 pixels.

At 64x64 with ngf=ndf=64 the layer stacks (and the ``main.N`` parameter names) are exactly
the PyTorch tutorial's, so its checkpoints load here. Each other size adds or removes one
up/down-sampling block per factor of two. Feature maps never grow wider than 8x ngf/ndf,
as at 64x64, which keeps 128 and 256 pixel models at a sensible size.
"""

from __future__ import annotations

import torch
from torch import nn

MAX_WIDTH_MULTIPLIER = 8


def _num_blocks(image_size: int) -> int:
    """Middle blocks between the 4x4 core and the full-size outer layer (64 -> 3)."""
    if image_size < 16 or image_size & (image_size - 1):
        raise ValueError(f"image size must be a power of two >= 16, got {image_size}")
    return image_size.bit_length() - 1 - 3


def width_multipliers(image_size: int) -> list[int]:
    """Width multipliers from the 4x4 core outwards, e.g. 64 -> [8, 4, 2, 1]."""
    n = _num_blocks(image_size)
    return [min(2**i, MAX_WIDTH_MULTIPLIER) for i in range(n, -1, -1)]


class Generator(nn.Module):
    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3, image_size: int = 64):
        super().__init__()
        self.nz, self.image_size, self.nc = nz, image_size, nc
        mults = width_multipliers(image_size)
        layers: list[nn.Module] = [
            # input is Z, going into a convolution: (nz) x 1 x 1 -> (ngf*m0) x 4 x 4
            nn.ConvTranspose2d(nz, ngf * mults[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * mults[0]),
            nn.ReLU(True),
        ]
        for m_in, m_out in zip(mults, mults[1:]):
            # (ngf*m_in) x s x s -> (ngf*m_out) x 2s x 2s
            layers += [
                nn.ConvTranspose2d(ngf * m_in, ngf * m_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ngf * m_out),
                nn.ReLU(True),
            ]
        # (ngf) x size/2 x size/2 -> (nc) x size x size, in [-1, 1]
        layers += [nn.ConvTranspose2d(ngf * mults[-1], nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self, ndf: int = 64, nc: int = 3, image_size: int = 64):
        super().__init__()
        self.image_size, self.nc = image_size, nc
        mults = width_multipliers(image_size)[::-1]  # 64 -> [1, 2, 4, 8]
        layers: list[nn.Module] = [
            # input is (nc) x size x size -> (ndf) x size/2 x size/2; no BatchNorm here
            nn.Conv2d(nc, ndf * mults[0], 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for m_in, m_out in zip(mults, mults[1:]):
            # (ndf*m_in) x s x s -> (ndf*m_out) x s/2 x s/2
            layers += [
                nn.Conv2d(ndf * m_in, ndf * m_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ndf * m_out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        # (ndf*m_last) x 4 x 4 -> 1 x 1 x 1, a probability
        layers += [nn.Conv2d(ndf * mults[-1], 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def weights_init(m: nn.Module) -> None:
    """The tutorial's init: conv weights ~ N(0, 0.02); BatchNorm weights ~ N(1, 0.02), bias 0."""
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


class SampleableSyncBatchNorm(nn.SyncBatchNorm):
    """SyncBatchNorm (--sync-bn, several CUDA processes: statistics over the whole batch)
    that can also normalise within this process: rank 0 draws samples alone, and a
    synchronised forward there would wait forever for the other ranks' statistics. Same
    state as BatchNorm2d."""

    alone = False

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.alone:
            return super().forward(input)
        return nn.functional.batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias,
                                        True, self.momentum or 0.0, self.eps)


def synchronise_batchnorm(net: nn.Module) -> nn.Module:
    """``net`` with its BatchNorm layers synchronised across processes (SampleableSyncBatchNorm)."""
    net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    for m in net.modules():
        if type(m) is nn.SyncBatchNorm:
            m.__class__ = SampleableSyncBatchNorm  # adds behaviour only, no state
    return net


@torch.no_grad()
def generate(generator: nn.Module, z: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
    """Images for ``z`` (of ``classes``, for a conditional generator) as the tutorial draws
    them (batch statistics, train mode), without touching the BatchNorm running statistics:
    showing samples never changes the model. Synchronised BatchNorm normalises within this
    process here (one process draws)."""
    buffers = {name: b.clone() for name, b in generator.named_buffers()}
    was_training = generator.training
    synced = [m for m in generator.modules() if isinstance(m, SampleableSyncBatchNorm)]
    generator.train()
    for m in synced:
        m.alone = True
    try:
        images = generator(z) if classes is None else generator(z, classes.to(z.device))
        return images.contiguous()  # the usual layout, also from a channels-last model
    finally:
        for m in synced:
            m.alone = False
        for name, b in generator.named_buffers():
            b.copy_(buffers[name])
        generator.train(was_training)
