"""One Runtime per worker process, built on first use (after fork, so no shared DB sockets)."""

from __future__ import annotations

import threading

from infra.runtime import Runtime
from infra.settings import Settings

_lock = threading.Lock()
_runtime: Runtime | None = None


def worker_runtime() -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime(Settings())
        return _runtime
