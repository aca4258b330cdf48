"""``--augment``: differentiable augmentation of everything the discriminator sees.

DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
Training", policy ``color,translation,cutout``): every batch that goes into D, real or
generated, in D's step and in G's, is transformed at random, and the transforms are
differentiable, so G learns through them. D then cannot memorise a small dataset's exact
images, and because real and generated images get the same random transforms (drawn
independently per image), nothing of the augmentation leaks into what G learns to draw.

The random draws come from the run's noise generator, which checkpoints keep, so a
resumed run continues exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Translation by up to this fraction of the side, and a cutout of this fraction of it.
TRANSLATION = 0.125
CUTOUT = 0.5


def diff_augment(x: torch.Tensor, generator: torch.Generator, rows: slice | None = None,
                 batch_size: int | None = None) -> torch.Tensor:
    """``x`` (N, C, H, W in [-1, 1]) with colour, translation and cutout applied per image.
    ``rows``: where several processes share a batch of ``batch_size``, the rows of it that
    ``x`` holds; the draws are made for the whole batch and sliced (world.py)."""
    draw = _Draws(generator, rows, batch_size)
    x = _colour(x, draw)
    x = _translate(x, draw)
    return _cutout(x, draw)


class _Draws:
    """Uniform draws for a batch's images: for all of them, or ``rows`` of a whole batch."""

    def __init__(self, generator: torch.Generator, rows: slice | None, batch_size: int | None) -> None:
        self.generator, self.rows, self.batch_size = generator, rows, batch_size

    def __call__(self, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """Drawn in fp32 whatever ``x`` is: in bf16 the generated batch is bf16 and the real
        one fp32, and both must get transforms from one distribution (bf16 draws are coarse
        enough to move a shift or a cutout by a pixel)."""
        if self.rows is None:
            return torch.rand(shape, device=x.device, generator=self.generator)
        whole = torch.rand((self.batch_size, *shape[1:]), device=x.device, generator=self.generator)
        return whole[self.rows]


def _colour(x: torch.Tensor, draw: _Draws) -> torch.Tensor:
    """Brightness ±0.5, saturation ×[0, 2], contrast ×[0.5, 1.5] (DiffAugment's ranges)."""
    n = x.shape[0]
    x = x + (draw(x, (n, 1, 1, 1)) - 0.5).to(x.dtype)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (draw(x, (n, 1, 1, 1)) * 2).to(x.dtype) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (draw(x, (n, 1, 1, 1)) + 0.5).to(x.dtype) + mean


def _translate(x: torch.Tensor, draw: _Draws) -> torch.Tensor:
    """Shift each image by up to TRANSLATION of its side, filling with zeros."""
    n, _, h, w = x.shape
    sh, sw = int(h * TRANSLATION + 0.5), int(w * TRANSLATION + 0.5)
    ty = (draw(x, (n, 1, 1)) * (2 * sh + 1)).long() - sh
    tx = (draw(x, (n, 1, 1)) * (2 * sw + 1)).long() - sw
    rows, cols = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    rows = torch.clamp(rows[None] + ty + 1, 0, h + 1)  # +1: the zero border F.pad adds
    cols = torch.clamp(cols[None] + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    index = torch.arange(n, device=x.device)[:, None, None]
    return padded[index, rows, cols].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, draw: _Draws) -> torch.Tensor:
    """Zero a square of CUTOUT of the side at a random place in each image."""
    n, _, h, w = x.shape
    ch, cw = int(h * CUTOUT + 0.5), int(w * CUTOUT + 0.5)
    oy = (draw(x, (n, 1, 1)) * (h + (1 - ch % 2))).long()
    ox = (draw(x, (n, 1, 1)) * (w + (1 - cw % 2))).long()
    rows, cols = torch.meshgrid(torch.arange(ch, device=x.device), torch.arange(cw, device=x.device), indexing="ij")
    rows = torch.clamp(rows[None] + oy - ch // 2, 0, h - 1)
    cols = torch.clamp(cols[None] + ox - cw // 2, 0, w - 1)
    mask = torch.ones(n, h, w, device=x.device, dtype=x.dtype)
    mask[torch.arange(n, device=x.device)[:, None, None], rows, cols] = 0
    return x * mask[:, None]
