"""Torch threads of a Celery worker's jobs: the rule of ``blockzoo.threads`` with its concurrency.

Run in the worker's main process before it starts its pool (Celery's ``celeryd_init``): the
count goes into ``BLOCKZOO_TORCH_THREADS`` unless the user set it (or ``OMP_NUM_THREADS``), so
every child, forked later, reads it through ``Settings`` and applies it before its first job.
"""

from __future__ import annotations

import os
from typing import Any

from blockzoo.threads import available_cores, default_threads

SETTING = "BLOCKZOO_TORCH_THREADS"


def worker_slots(options: dict[str, Any]) -> int:
    """Jobs a worker runs at once: 1 for the solo pool, else its concurrency (Celery's default: the cores)."""
    pool = str(options.get("pool") or "prefork").lower()
    if "solo" in pool:
        return 1
    concurrency = options.get("concurrency")
    return int(concurrency) if concurrency else available_cores()


def configure_worker_threads(options: dict[str, Any]) -> int:
    """Set ``BLOCKZOO_TORCH_THREADS`` for this worker's jobs unless already set; returns the count."""
    if os.environ.get(SETTING, "").strip():
        return int(os.environ[SETTING])
    threads = default_threads(worker_slots(options))
    os.environ[SETTING] = str(threads)
    return threads
