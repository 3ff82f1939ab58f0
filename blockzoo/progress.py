"""Progress reporting and cooperative cancellation for long-running core functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Callable, Optional

ProgressFn = Callable[[float, str], None]
# A job made of named phases reports (phase, fraction of that phase, message): the CLI shows
# one bar per phase, the worker maps each phase onto a slice of the job (`phase_ranges`).
PhaseProgressFn = Callable[[str, float, str], None]
StopFn = Callable[[], bool]


class Cancelled(Exception):
    """Raised at a safe point (finished work already persisted) when ``should_stop()`` is true."""


def report(progress: Optional[ProgressFn], fraction: float, message: str) -> None:
    if progress is not None:
        progress(min(1.0, max(0.0, fraction)), message)


def check_stop(should_stop: Optional[StopFn]) -> None:
    if should_stop is not None and should_stop():
        raise Cancelled("cancelled on request")


def in_phase(progress: Optional[PhaseProgressFn], phase: str) -> Optional[ProgressFn]:
    """The plain callback a core function takes, reporting into ``phase`` of ``progress``."""
    if progress is None:
        return None
    return lambda fraction, message: progress(phase, min(1.0, max(0.0, fraction)), message)


def phase_ranges(progress: ProgressFn, ranges: Mapping[str, tuple[float, float]]) -> PhaseProgressFn:
    """A phase callback mapping each phase's 0..1 onto its ``(start, end)`` slice of ``progress``.

    E.g. ``phase_ranges(job.progress, {"distilling": (0, .7), "scoring": (.7, .85),
    "zero-cost": (.85, 1)})``. A phase missing from ``ranges`` is reported as 0..1.
    """
    def report_phase(phase: str, fraction: float, message: str) -> None:
        start, end = ranges.get(phase, (0.0, 1.0))
        progress(start + (end - start) * fraction, message)

    return report_phase
