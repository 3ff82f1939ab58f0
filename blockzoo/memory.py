"""Returning freed heap memory to the operating system between large pieces of work.

glibc keeps memory freed by a process in its heap for reuse; after a burst of big temporary
tensors (a stage's distillation), that memory stays resident although nothing uses it, and the
next burst lands beside it rather than in it. ``malloc_trim`` gives it back. Elsewhere than
glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache


@lru_cache(maxsize=1)
def _malloc_trim():  # -> the libc function, or None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Hand the heap's free pages back to the OS (glibc ``malloc_trim(0)``)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
