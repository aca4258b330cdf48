"""Host memory allocator tuning for training on a CPU.

A CPU training step allocates and frees activations of tens of megabytes each. glibc's
malloc serves blocks that large with fresh ``mmap`` calls and returns them with
``munmap``, so every step page-faults its activations in again and the kernel zeroes
them: measured at about a fifth of a 64x64 tutorial-config step on a 2-core CPU.
Telling malloc to serve every block from its heap and never to give freed memory back
makes later steps reuse the same pages. The process then keeps its peak memory, which
a training process reaches in its first step anyway.

glibc only (Linux); elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
#: Free memory at the heap's top is given back only beyond this (mallopt takes an int):
#: in practice never, so it is there for the next step.
TRIM_THRESHOLD = 2**31 - 1

_applied: bool | None = None


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    # musl and other C libraries have no mallopt, or one that ignores these settings
    if not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Make malloc reuse freed memory instead of unmapping it; True if glibc took the
    settings (applied once per process)."""
    global _applied
    if _applied is None:
        libc = _libc()
        if libc is None:
            _applied = False
        else:
            libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            _applied = bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
