"""The conditional GAN (--conditional): the tutorial's layer stacks, asked for a class.

The generator is the tutorial's with conditional BatchNorm: each BatchNorm normalises
without a scale and shift of its own and takes them from a per-class embedding (the gain
initialised N(1, 0.02), as the tutorial initialises BatchNorm weights; the shift 0). The
discriminator is the tutorial's with a projection (Miyato & Koyama 2018): its logit is the
tutorial's last convolution plus the inner product of a class embedding with the last
feature map summed over its 4×4 positions. PyTorch-StudioGAN's DCGAN backbone pairs the
same two (cBN + PD). Why this pair and not cDCGAN or AC-GAN, by measurement:
docs/conditional.md.

Every layer of the tutorial's nets is kept, with its type, so the CPU speed layers,
SyncBatchNorm and the checkpoint checks treat them alike; the classes add embeddings only.
"""

from __future__ import annotations

import torch
from torch import nn

from .models import weights_init, width_multipliers

#: A conditional run's samples: each class shown is a row of this many, the same fixed
#: noise in each column, so a column shows one z across the classes.
SAMPLE_COLUMNS = 8
#: The rows (classes) the samples show at once; ``k`` moves on through a run with more.
SHOWN_CLASSES = 10


class ClassNorm(nn.Module):
    """BatchNorm whose scale and shift are looked up by class (conditional BatchNorm)."""

    def __init__(self, features: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(features, affine=False)
        self.gain = nn.Embedding(num_classes, features)
        self.shift = nn.Embedding(num_classes, features)

    def reset_parameters(self) -> None:
        nn.init.normal_(self.gain.weight, 1.0, 0.02)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.gain(y)[:, :, None, None] + self.shift(y)[:, :, None, None]


class ConditionalGenerator(nn.Module):
    """G(z, y): the tutorial's generator with a ClassNorm after each inner convolution."""

    def __init__(self, num_classes: int, nz: int = 100, ngf: int = 64, nc: int = 3, image_size: int = 64):
        super().__init__()
        self.nz, self.image_size, self.nc, self.num_classes = nz, image_size, nc, num_classes
        mults = width_multipliers(image_size)
        # (nz) x 1 x 1 -> (ngf*m0) x 4 x 4, then each block doubles the side
        self.convs = nn.ModuleList([nn.ConvTranspose2d(nz, ngf * mults[0], 4, 1, 0, bias=False)])
        self.convs.extend(nn.ConvTranspose2d(ngf * m_in, ngf * m_out, 4, 2, 1, bias=False)
                          for m_in, m_out in zip(mults, mults[1:]))
        self.norms = nn.ModuleList(ClassNorm(ngf * m, num_classes) for m in mults)
        self.relu = nn.ReLU(True)
        # (ngf) x size/2 x size/2 -> (nc) x size x size, in [-1, 1]
        self.out = nn.Sequential(nn.ConvTranspose2d(ngf * mults[-1], nc, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = z
        for conv, norm in zip(self.convs, self.norms):
            x = self.relu(norm(conv(x), y))
        return self.out(x)


class ConditionalDiscriminator(nn.Module):
    """D(x, y): the tutorial's discriminator, its verdict plus a class projection."""

    def __init__(self, num_classes: int, ndf: int = 64, nc: int = 3, image_size: int = 64):
        super().__init__()
        self.image_size, self.nc, self.num_classes = image_size, nc, num_classes
        mults = width_multipliers(image_size)[::-1]  # 64 -> [1, 2, 4, 8]
        layers: list[nn.Module] = [nn.Conv2d(nc, ndf * mults[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for m_in, m_out in zip(mults, mults[1:]):
            layers += [nn.Conv2d(ndf * m_in, ndf * m_out, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * m_out),
                       nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)  # (ndf*m_last) x 4 x 4
        self.verdict = nn.Conv2d(ndf * mults[-1], 1, 4, 1, 0, bias=False)
        self.embed = nn.Embedding(num_classes, ndf * mults[-1])

    def forward(self, x: torch.Tensor, y: torch.Tensor, logits: bool = False) -> torch.Tensor:
        """The probability that ``x`` is a real image of class ``y`` (N, 1, 1, 1), or its
        logit (for BCEWithLogits under bf16 autocast)."""
        h = self.features(x)
        projection = (self.embed(y) * h.sum(dim=(2, 3))).sum(dim=1)
        out = self.verdict(h) + projection.view(-1, 1, 1, 1).to(h.dtype)
        return out if logits else torch.sigmoid(out)


def init_conditional(net: nn.Module) -> None:
    """The tutorial's initialisation (convolutions N(0, 0.02), BatchNorm weights N(1, 0.02))
    and the class embeddings' (ClassNorm: gain N(1, 0.02), shift 0; projection N(0, 0.02))."""
    for m in net.modules():
        if isinstance(m, ClassNorm):
            m.reset_parameters()
        elif isinstance(m, ConditionalDiscriminator):
            nn.init.normal_(m.embed.weight, 0.0, 0.02)
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) or (isinstance(m, nn.BatchNorm2d) and m.affine):
            weights_init(m)


def class_rows(num_classes: int, first: int, rows: int) -> list[int]:
    """The classes of a grid with one row per class: up to ``rows`` of them from class
    ``first`` on, wrapping round."""
    return [(first + i) % num_classes for i in range(min(rows, num_classes))]
