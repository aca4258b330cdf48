"""Image helpers: model output to uint8, sample grids, PNG files (written atomically)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .atomic import atomic_write


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] -> uint8 [0, 255], same shape, on the same device."""
    return images.detach().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (the inverse of to_uint8 up to rounding), a new tensor."""
    return images.float().div_(127.5).sub_(1.0)


def grid(images: torch.Tensor | np.ndarray, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """uint8 (N, C, H, W) -> one uint8 (H', W', C) mosaic with ``padding`` black pixels
    between tiles (as torchvision's make_grid). ``nrow`` defaults to a near-square layout."""
    arr = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    n, c, h, w = arr.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    out = np.zeros((padding + rows * (h + padding), padding + nrow * (w + padding), c), dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        out[y : y + h, x : x + w] = arr[i].transpose(1, 2, 0)
    return out


def to_pil(array: np.ndarray) -> Image.Image:
    """(H, W, C) uint8 with C in {1, 3} -> a PIL image."""
    if array.ndim == 3 and array.shape[2] == 1:
        return Image.fromarray(array[:, :, 0], mode="L")
    return Image.fromarray(array, mode="RGB")


def save_png(image: Image.Image, path: str | Path) -> Path:
    return atomic_write(path, lambda f: image.save(f, format="PNG"))


def save_grid(images: torch.Tensor | np.ndarray, path: str | Path, nrow: int | None = None) -> Path:
    """Save uint8 (N, C, H, W) images as one PNG grid."""
    return save_png(to_pil(grid(images, nrow)), path)
