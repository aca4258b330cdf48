"""How many samples a panel shows, and how large: the choice the half-block layout
(samples.fit_grid) and the pixel layout (pixels.fit_pixel_grid) share. Standard library
only: the samples panel imports it before the first frame."""

from __future__ import annotations

MIN_SAMPLES = 9  # shrink tiles until at least this many samples fit, if they can
MIN_TILE = 8


def largest_showing(layouts: list[tuple[int, int, int]], n: int) -> tuple[int, int, int]:
    """Of (columns, rows, tile) ``layouts``, largest tiles first: the first that shows at
    least MIN_SAMPLES of ``n`` samples, else 4, else 1; (0, 0, 0) where none shows one."""
    for target in (MIN_SAMPLES, 4, 1):
        for cols, rows, tile in layouts:
            if cols * rows >= min(n, target):
                return cols, rows, tile
    return (0, 0, 0)
