"""Progress reporting and cooperative cancellation for long-running core functions."""

from __future__ import annotations

from typing import Callable, Optional

ProgressFn = Callable[[float, str], None]
StopFn = Callable[[], bool]


class Cancelled(Exception):
    """Raised at a safe point (finished work already persisted) when ``should_stop()`` is true."""


def report(progress: Optional[ProgressFn], fraction: float, message: str) -> None:
    if progress is not None:
        progress(min(1.0, max(0.0, fraction)), message)


def check_stop(should_stop: Optional[StopFn]) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("cancelled on request")
