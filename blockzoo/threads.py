"""How many CPU threads torch gets: one share of the cores per job slot, one share for the rest.

Torch's own default (one thread per core) oversubscribes a machine whose cores the job shares
with the API, the dashboard, the database or other jobs (measured in docs/cli.md, "Threads").
The rule here::

    threads per job = max(1, cores // (slots + 1))

``cores``: the cores this process may run on (``os.sched_getaffinity``: a container's or
``taskset``'s limit, not the machine's); ``slots``: the jobs that may run at once in the
process group (``BLOCKZOO_LOCAL_WORKERS`` for the embedded server, the Celery worker's
concurrency, 1 for the command line); the ``+ 1`` keeps one share for everything else. An
explicit setting (``--threads``, ``BLOCKZOO_TORCH_THREADS``, ``OMP_NUM_THREADS``) wins.
"""

from __future__ import annotations

import os

# Environment variables through which a user already chose torch's thread count.
USER_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity API (macOS, Windows)
        return max(1, os.cpu_count() or 1)


def job_threads(cores: int, slots: int) -> int:
    """Torch threads for each of ``slots`` concurrent jobs on ``cores`` cores (module docstring)."""
    if cores < 1 or slots < 1:
        raise ValueError(f"cores and slots must be >= 1 (got cores={cores}, slots={slots})")
    return max(1, cores // (slots + 1))


def user_threads() -> int | None:
    """The thread count a user set through ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``, if any."""
    for name in USER_THREAD_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) >= 1:
            return int(value)
    return None


def default_threads(slots: int = 1) -> int:
    """The thread count for jobs of this process: the user's, else :func:`job_threads`."""
    return user_threads() or job_threads(available_cores(), slots)


def apply_threads(threads: int) -> int:
    """Set torch's intra-op threads (process-wide) to ``threads``; returns it."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
