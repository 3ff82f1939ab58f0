"""Keep freed CPU memory in the process (glibc malloc) instead of handing it back to the OS.

Scoring with a prefix cache keeps hundreds of MiB of feature maps alive while new ones are
allocated and freed around them. With glibc's defaults, large blocks are mmap-ed and freed
memory above the heap's top is trimmed, so a fresh feature map often lands on new pages that
the kernel must fault in and zero, and the cached path ran slower than computing with nothing
cached (docs/core-api.md, "Speed notes"). Raising the mmap and trim thresholds makes freed blocks
reusable, as PyTorch's CUDA caching allocator does on the GPU; the price is a resident size
that stays near its peak. Call once per process (worker, CLI, benchmarks); a no-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's maximum on 64-bit: blocks below it come from the heap
TRIM_THRESHOLD = 2**30       # keep up to 1 GiB of free memory at the heap's top
TOP_PAD = 64 * 2**20         # grow the heap in steps of 64 MiB

_done = False
_lock = threading.Lock()


def keep_freed_memory() -> bool:
    """Tune glibc malloc for tensor churn (idempotent); False where that is not possible."""
    global _done
    with _lock:
        if _done:
            return True
        name = ctypes.util.find_library("c")
        try:
            mallopt = ctypes.CDLL(name).mallopt
        except (OSError, AttributeError, TypeError):
            return False
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        _done = all(mallopt(option, value) == 1 for option, value in (
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD)))
        return _done
