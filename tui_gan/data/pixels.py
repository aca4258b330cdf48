"""The pixel convention between data and models: uint8 [0, 255] in storage, float [-1, 1]
in the models (the tutorial's Normalize((0.5,), (0.5,)) and its generator's Tanh)."""

from __future__ import annotations

import torch


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] -> uint8 [0, 255], same shape, on the same device."""
    return images.detach().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (the inverse of to_uint8 up to rounding), a new tensor."""
    return images.float().div_(127.5).sub_(1.0)
