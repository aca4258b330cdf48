"""Latent interpolation: walks through the generator's latent space, as frames.

Each walk visits a few fixed random latent vectors and comes back to the first, moving
along great circles (slerp: Gaussian latents live near a sphere, and a straight line
between two of them passes through unlikely, low-norm points). The vectors are fixed per
run, so walks made at different steps show how the same path renders as training goes on.
"""

from __future__ import annotations

import torch

from ..data.pixels import to_uint8
from .models import generate

WALKS = 16
STOPS = 4
FRAMES_PER_LEG = 12


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` (..., nz) at fractions ``t`` (T,):
    (T, ..., nz). Falls back to a straight line for (nearly) parallel vectors."""
    a_n, b_n = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(-1, keepdim=True).clamp(-1.0, 1.0))  # (..., 1)
    so = torch.sin(omega)
    t = t.view(-1, *([1] * a.dim()))
    linear = (1 - t) * a + t * b
    curved = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / so.clamp_min(1e-6)
    return torch.where(so.abs() < 1e-4, linear, curved)


def latent_walk(nz: int, seed: int, walks: int = WALKS, stops: int = STOPS,
                frames_per_leg: int = FRAMES_PER_LEG) -> torch.Tensor:
    """(frames, walks, nz, 1, 1): ``walks`` closed loops through ``stops`` random vectors."""
    g = torch.Generator().manual_seed(seed)
    points = torch.randn(stops, walks, nz, generator=g)
    t = torch.arange(frames_per_leg, dtype=torch.float32) / frames_per_leg
    legs = [slerp(points[i], points[(i + 1) % stops], t) for i in range(stops)]
    return torch.cat(legs).view(-1, walks, nz, 1, 1)


@torch.no_grad()
def render_walk(netG: torch.nn.Module, walk: torch.Tensor, device: torch.device,
                classes: torch.Tensor | None = None) -> torch.Tensor:
    """The walk's frames as uint8 (frames, walks, C, H, W) on the CPU; a frame's walks are
    drawn as one batch, like the fixed-noise samples. ``classes``: a conditional
    generator's class for each walk (walks,)."""
    classes = None if classes is None else classes.to(device)
    frames = [to_uint8(generate(netG, z.to(device), classes)).cpu() for z in walk]
    return torch.stack(frames)
