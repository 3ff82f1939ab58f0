"""Per-key rate limit on expensive requests: a token bucket per API key, in the API process.

Routes that start work (scores, cost, creating zoos, searches, fine-tunes, datasets, weights)
take ``dependencies=[RateLimited]``. Each API key has a bucket of ``rate_limit_burst`` tokens,
refilled at ``rate_limit_per_s``; a request takes one, and with none left it is a 429 whose
``Retry-After`` says when the next token comes. ``rate_limit_per_s = 0`` turns the limit off.
The buckets live in this process (each API process counts its own requests); at most
``MAX_TRACKED_KEYS`` are kept, the least recently used dropped first (a dropped key starts full).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict

from fastapi import Depends, Request

from app.api.deps import OwnerDep, RuntimeDep
from app.errors import RateLimitExceeded

MAX_TRACKED_KEYS = 10_000


class TokenBuckets:
    """Token buckets by key: ``take(key)`` is None when allowed, else the seconds to wait."""

    def __init__(self, rate_per_s: float, burst: int, clock=time.monotonic) -> None:
        self.rate_per_s, self.burst, self._clock = rate_per_s, burst, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate_per_s)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            while len(self._buckets) > MAX_TRACKED_KEYS:
                self._buckets.popitem(last=False)
        return None if allowed else (1.0 - tokens) / self.rate_per_s


_create_lock = threading.Lock()


def _buckets(request: Request, rate_per_s: float, burst: int) -> TokenBuckets:
    state = request.app.state
    with _create_lock:
        buckets = getattr(state, "rate_limit_buckets", None)
        if buckets is None or (buckets.rate_per_s, buckets.burst) != (rate_per_s, burst):
            buckets = state.rate_limit_buckets = TokenBuckets(rate_per_s, burst)
    return buckets


def rate_limited(request: Request, owner: OwnerDep, runtime: RuntimeDep) -> None:
    """429 with Retry-After when this request's API key has used up its expensive requests."""
    settings = runtime.settings
    if settings.rate_limit_per_s <= 0:
        return
    token = request.headers.get("authorization", "")
    key = owner.id + ":" + hashlib.sha256(token.encode()).hexdigest()[:16]  # per key, never the key itself
    wait_s = _buckets(request, settings.rate_limit_per_s, settings.rate_limit_burst).take(key)
    if wait_s is not None:
        retry = max(1, math.ceil(wait_s))
        raise RateLimitExceeded(
            f"too many expensive requests from this API key: at most {settings.rate_limit_burst} at once and "
            f"{settings.rate_limit_per_s:g} per second after that (the server's rate_limit_burst and "
            f"rate_limit_per_s); retry in {retry} s",
            details={"retry_after_s": retry, "rate_limit_per_s": settings.rate_limit_per_s,
                     "rate_limit_burst": settings.rate_limit_burst},
            headers={"Retry-After": str(retry)},
        )


RateLimited = Depends(rate_limited)
