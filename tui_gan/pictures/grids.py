"""Sample grids and PNG files (written atomically): numpy and Pillow, no torch.

Images are uint8 (N, C, H, W) arrays; a CPU torch tensor works too (numpy reads it).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, PngImagePlugin

from ..core.atomic import atomic_write


def grid(images: np.ndarray, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """uint8 (N, C, H, W) -> one uint8 (H', W', C) mosaic with ``padding`` black pixels
    between tiles (as torchvision's make_grid). ``nrow`` defaults to a near-square layout."""
    arr = np.asarray(images.cpu() if hasattr(images, "cpu") else images)
    n, c, h, w = arr.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    out = np.zeros((padding + rows * (h + padding), padding + nrow * (w + padding), c), dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        out[y : y + h, x : x + w] = arr[i].transpose(1, 2, 0)
    return out


def paste_tiles(canvas: np.ndarray, images: np.ndarray, cols: int, rows: int, tile: int, x0: int, y0: int,
                gap: int) -> None:
    """Paste the first ``cols`` x ``rows`` of uint8 (N, C, H, W) square images into the RGB
    ``canvas`` (H', W', 3), row by row from (``x0``, ``y0``), ``tile`` pixels each with
    ``gap`` between: grey repeated to RGB, enlarged by whole multiples (nearest neighbour,
    no blur), shrunk with a box filter. The samples panel's layouts (half blocks and
    pixels) both place their tiles with it."""
    channels, native = images.shape[1], images.shape[-1]
    for i in range(min(images.shape[0], cols * rows)):
        img = images[i].transpose(1, 2, 0)
        if channels == 1:
            img = np.repeat(img, 3, axis=2)
        if tile > native:
            img = img.repeat(tile // native, axis=0).repeat(tile // native, axis=1)
        elif tile < native:
            img = np.asarray(Image.fromarray(np.ascontiguousarray(img)).resize((tile, tile), Image.BOX))
        row, col = divmod(i, cols)
        y, x = y0 + row * (tile + gap), x0 + col * (tile + gap)
        canvas[y : y + tile, x : x + tile] = img


def to_pil(array: np.ndarray) -> Image.Image:
    """(H, W, C) uint8 with C in {1, 3} -> a PIL image."""
    if array.ndim == 3 and array.shape[2] == 1:
        return Image.fromarray(array[:, :, 0], mode="L")
    return Image.fromarray(array, mode="RGB")


def save_png(image: Image.Image, path: str | Path) -> Path:
    return atomic_write(path, lambda f: image.save(f, format="PNG"))


def save_grid(images: np.ndarray, path: str | Path, nrow: int | None = None) -> Path:
    """Save uint8 (N, C, H, W) images as one PNG grid."""
    return save_png(to_pil(grid(images, nrow)), path)


#: The PNG text chunk that names a class grid's rows, one class name per line.
ROWS_CHUNK = "tui-gan:rows"


def save_class_grid(images: np.ndarray, path: str | Path, row_names: list[str], columns: int) -> Path:
    """Save a conditional run's samples, one row of ``columns`` per class, as a PNG grid
    with each row's class name in a margin at its left (and in the PNG's ``ROWS_CHUNK``
    text). The tiles sit at the right, laid out as ``grid`` lays them, so a reader that
    knows the tile size finds them (progression.epoch_samples)."""
    tiles = to_pil(grid(images, columns)).convert("RGB")
    size, grey = images.shape[-1], images.shape[1] == 1
    margin = 8 + max(int(ImageDraw.Draw(tiles).textlength(name)) for name in row_names)
    out = Image.new("RGB", (margin + tiles.width, tiles.height), (0, 0, 0))
    out.paste(tiles, (margin, 0))
    draw = ImageDraw.Draw(out)
    for row, name in enumerate(row_names):
        y = 2 + row * (size + 2) + size // 2
        draw.text((margin - 4, y), name, fill=(230, 230, 230), anchor="rm")
    if grey:
        out = out.convert("L")
    info = PngImagePlugin.PngInfo()
    info.add_itxt(ROWS_CHUNK, "\n".join(row_names))
    return atomic_write(path, lambda f: out.save(f, format="PNG", pnginfo=info))
