"""Keep Python's garbage collector from rescanning torch, Textual and the models.

Once training has started, the hundreds of thousands of objects that exist (torch's and
Textual's modules, the models, the data) live until the process ends. Left in the
collector's oldest generation, each full collection walks all of them while holding the
GIL, stalling the training loop for a quarter of a second at a time. Freezing moves them
out of the collector's view; objects created later are collected as usual.
"""

from __future__ import annotations

import gc


def freeze_long_lived_objects() -> None:
    gc.freeze()
