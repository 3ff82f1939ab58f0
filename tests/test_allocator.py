"""blockzoo.allocator: the glibc tuning applies (on glibc), is idempotent, and memory still works."""

from __future__ import annotations

import ctypes.util
import platform

import pytest
import torch

from blockzoo.allocator import keep_freed_memory


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_keep_freed_memory_applies_on_glibc_and_is_idempotent():
    assert ctypes.util.find_library("c")
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True
    # Large blocks (above glibc's default 128 KiB mmap threshold) are still allocated, freed and reused correctly.
    for _ in range(3):
        x = torch.full((8 * 2**20,), 2.0)
        assert float(x.sum()) == 16 * 2**20
        del x
