"""Is the GAN learning? The sliced Wasserstein distance and a diversity ratio.

SWD is Karras et al. 2018 ("Progressive Growing of GANs", section 5 and their
``sliced_wasserstein.py``): build a Laplacian pyramid of each image (down to 16×16), take
random 7×7 neighbourhoods at every level, normalise each channel over the set, and compare
the real and the generated sets of descriptors along random directions (sort the
projections, average the absolute differences). It needs no download and no pretrained
network, and it sees both the coarse structure (low levels) and the texture (the 64×64
level). Reported ×1000 as in the paper, averaged over the levels: lower is better,
and about 0 for two samples of the same distribution.

The diversity ratio is the mean pairwise distance between generated images over that
between real ones (both at 16×16): about 1 for a healthy generator, falling towards 0 as
it collapses onto a few outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..data.pixels import from_uint8
from .models import generate

#: Neighbourhood side, neighbourhoods per image and level, projection directions. Karras et
#: al. take 128 neighbourhoods of 16,384 images and 4×128 directions on a GPU; these keep a
#: measurement of 512 images at 64×64 to about a second on a 2-core CPU (sorting the
#: projections dominates), which is precise enough to follow a run.
PATCH = 7
PATCHES_PER_IMAGE = 32
DIRECTIONS = 128
SMALLEST_LEVEL = 16
#: Below this ratio the generator's samples are far less varied than the data's.
COLLAPSE_RATIO = 0.35


@dataclass
class Quality:
    swd: float
    """Sliced Wasserstein distance ×1000, the mean over the pyramid's levels."""
    swd_levels: list[float]
    """The same per level, finest (the image size) first."""
    diversity: float
    """Mean pairwise distance of generated images over that of real ones."""
    class_swd: list[float] | None = None
    """A conditional run's: each class's SWD (by class index), its generated images against
    its real ones; NaN for a class with fewer than two images in the real subset."""


def _binomial(channels: int, device: torch.device) -> torch.Tensor:
    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=device)
    k2 = torch.outer(k, k) / 256.0
    return k2.expand(channels, 1, 5, 5).contiguous()


def _down(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, stride=2, groups=x.shape[1])


def _up(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    up = torch.zeros(n, c, h * 2, w * 2, device=x.device, dtype=x.dtype)
    up[:, :, ::2, ::2] = x * 4.0
    return F.conv2d(F.pad(up, (2, 2, 2, 2), mode="reflect"), kernel, groups=c)


def laplacian_pyramid(images: torch.Tensor, smallest: int = SMALLEST_LEVEL) -> list[torch.Tensor]:
    """Levels finest first; the last is the blurred image at ``smallest`` (or the input if smaller)."""
    kernel = _binomial(images.shape[1], images.device)
    levels, current = [], images
    while current.shape[-1] > smallest:
        small = _down(current, kernel)
        levels.append(current - _up(small, kernel))
        current = small
    levels.append(current)
    return levels


def descriptors(level: torch.Tensor, per_image: int, generator: torch.Generator) -> torch.Tensor:
    """``per_image`` random PATCH×PATCH neighbourhoods of each image, each channel normalised
    over the whole set, flattened: (N * per_image, C * PATCH²)."""
    n, c, h, w = level.shape
    half = PATCH // 2
    ys = torch.randint(half, h - half, (n, per_image), generator=generator).to(level.device)
    xs = torch.randint(half, w - half, (n, per_image), generator=generator).to(level.device)
    offsets = torch.arange(-half, half + 1, device=level.device)
    rows = (ys[..., None] + offsets)[..., :, None]  # (n, p, 7, 1)
    cols = (xs[..., None] + offsets)[..., None, :]  # (n, p, 1, 7)
    flat = (rows * w + cols).reshape(n, 1, -1).expand(n, c, -1)  # (n, c, p*49)
    patches = level.reshape(n, c, h * w).gather(2, flat).reshape(n, c, per_image, PATCH * PATCH)
    patches = patches.permute(0, 2, 1, 3).reshape(n * per_image, c, PATCH * PATCH)
    patches = patches - patches.mean(dim=(0, 2), keepdim=True)
    patches = patches / patches.std(dim=(0, 2), keepdim=True).clamp_min(1e-8)
    return patches.reshape(n * per_image, -1)


def random_directions(dims: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` random unit vectors as rows: (count, dims)."""
    dirs = torch.randn(count, dims, generator=generator)
    return dirs / dirs.norm(dim=1, keepdim=True)


def sorted_projections(desc: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """The descriptors projected on each direction, sorted: (directions, N). Sorting along
    the contiguous last dimension is twice as fast as along the first."""
    return torch.sort(dirs.to(desc.device) @ desc.T, dim=1).values


def sliced_wasserstein(a_sorted: torch.Tensor, b_sorted: torch.Tensor) -> float:
    """Mean over the directions of the mean |sorted(a·d) - sorted(b·d)| (same sizes)."""
    return float((a_sorted - b_sorted).abs().mean())


def _as_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] or float [-1, 1] images as float [-1, 1]."""
    if images.dtype == torch.uint8:
        return from_uint8(images)
    return images.float()


class RealReference:
    """The fixed real subset's sorted descriptor projections and pairwise distances, computed
    once per run."""

    def __init__(self, real: torch.Tensor, seed: int = 0) -> None:
        self.seed = seed
        real = _as_float(real)
        self.count = real.shape[0]
        self.size = real.shape[-1]
        gen = torch.Generator().manual_seed(seed)
        # the same directions for every measurement, so the real side is sorted once
        self.directions, self.projections = [], []
        for level in laplacian_pyramid(real):
            desc = descriptors(level, PATCHES_PER_IMAGE, gen)
            dirs = random_directions(desc.shape[1], DIRECTIONS, gen)
            self.directions.append(dirs)
            self.projections.append(sorted_projections(desc, dirs))
        self.spread = mean_pairwise_distance(real)

    def compare(self, fake: torch.Tensor) -> Quality:
        fake = _as_float(fake).to(self.projections[0].device)
        if fake.shape[0] != self.count or fake.shape[-1] != self.size:
            raise ValueError(f"need {self.count} images of {self.size}px, got {tuple(fake.shape)}")
        gen = torch.Generator().manual_seed(self.seed + 1)
        levels = []
        for real_sorted, dirs, level in zip(self.projections, self.directions, laplacian_pyramid(fake)):
            fake_sorted = sorted_projections(descriptors(level, PATCHES_PER_IMAGE, gen), dirs)
            levels.append(1e3 * sliced_wasserstein(real_sorted, fake_sorted))
        spread = mean_pairwise_distance(fake)
        diversity = spread / self.spread if self.spread > 0 else float("nan")
        return Quality(swd=sum(levels) / len(levels), swd_levels=levels, diversity=diversity)


def mean_pairwise_distance(images: torch.Tensor, side: int = 16, limit: int = 256) -> float:
    """Mean L2 distance between distinct pairs of up to ``limit`` images, at ``side``×``side``."""
    x = _as_float(images[:limit])
    if x.shape[-1] > side:
        x = F.adaptive_avg_pool2d(x, side)
    flat = x.reshape(x.shape[0], -1)
    n = flat.shape[0]
    if n < 2:
        return float("nan")
    d = torch.cdist(flat, flat)
    return float(d.sum() / (n * (n - 1)))


class QualityProbe:
    """Measures one run's generator against a fixed real subset, the same at every
    measurement, and notices a collapse."""

    def __init__(self, config) -> None:
        self.config = config
        self._reference: RealReference | None = None
        self._noise: torch.Tensor | None = None
        self._classes: torch.Tensor | None = None
        self._class_references: dict[int, RealReference] = {}
        self._collapse_warned = False

    def images(self, dataset_size: int) -> int:
        """How many images a measurement compares (0: the probe is off)."""
        n = min(self.config.quality_images, dataset_size)
        return n if n >= 2 else 0

    @torch.no_grad()
    def measure(self, netG: torch.nn.Module, data, device: torch.device) -> Quality:
        """SWD and diversity of ``netG``'s images against ``data``'s fixed subset."""
        cfg = self.config
        if self._reference is None or self._noise is None:
            n = self.images(len(data))
            real = data.subset(n, cfg.seed)
            self._reference = RealReference(real, seed=cfg.seed)
            noise = torch.randn(n, cfg.nz, 1, 1, generator=torch.Generator().manual_seed(cfg.seed + 1))
            self._noise = noise.to(device)
            # a conditional run's generator is asked for the real subset's classes, so the
            # two sides hold the same mix of classes
            self._classes = data.subset_labels(n, cfg.seed).to(device) if cfg.conditional else None
            self._class_references = self._per_class(real) if cfg.conditional else {}
        batches = self._noise.split(cfg.batch_size)
        if self._classes is None:
            fake = torch.cat([generate(netG, z) for z in batches])
        else:
            fake = torch.cat([generate(netG, z, y) for z, y in zip(batches, self._classes.split(cfg.batch_size))])
        quality = self._reference.compare(fake)
        if self._class_references and self._classes is not None:
            chosen = self._classes.to(fake.device)
            measured = {c: ref.compare(fake[chosen == c]).swd for c, ref in self._class_references.items()}
            quality.class_swd = [measured.get(c, math.nan) for c in range(len(self.config.class_names or ()))]
        return quality

    def _per_class(self, real: torch.Tensor) -> dict[int, RealReference]:
        """A reference per class of the real subset (the same images, split by class), for
        the classes with two or more of them."""
        assert self._classes is not None
        classes = self._classes.to(real.device)
        return {int(c): RealReference(real[classes == c], seed=self.config.seed)
                for c in classes.unique().tolist() if int((classes == c).sum()) >= 2}

    def collapse_warning(self, diversity: float, best_before: float) -> str | None:
        """A warning the first time the samples fall from variety (``best_before``) to
        COLLAPSE_RATIO of the data's. An untrained generator's outputs are all alike, and
        early in a run they often are for an epoch or two before they spread out: only a
        fall counts."""
        collapsed = diversity < COLLAPSE_RATIO <= best_before
        warn, self._collapse_warned = collapsed and not self._collapse_warned, collapsed
        if not warn:
            return None
        return (f"the samples are {diversity:.2f}× as varied as the data: the generator may be collapsing "
                "onto a few outputs (mode collapse); a lower learning rate or a restart from a snapshot can help")

