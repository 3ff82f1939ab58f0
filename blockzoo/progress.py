"""Progress reporting and cooperative cancellation for long-running core functions.

Messages name their phase first, ``"<phase>: <counts>"`` (``"training: step 40/158 loss 1.234"``,
``"distilling: 120/560 blocks (stage 2/5)"``): the service shows the phase of a job from it
(:func:`phase_of`) and a person reads the counts. Long loops report by time, not by step
count (:class:`Ticker`), so a slow machine still sees a fresh message every second or so.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from typing import Callable, Optional

ProgressFn = Callable[[float, str], None]
# A job made of named phases reports (phase, fraction of that phase, message): the CLI shows
# one bar per phase, the worker maps each phase onto a slice of the job (`phase_ranges`).
PhaseProgressFn = Callable[[str, float, str], None]
StopFn = Callable[[], bool]

REPORT_INTERVAL_S = 1.0  # long loops report at most this often (and always at their end)
ETA_MIN_FRACTION = 0.01  # below this share of the work an estimate of the rest is noise

_PHASE = re.compile(r"^([A-Za-z][A-Za-z0-9 -]{0,31}): ")


class Cancelled(Exception):
    """Raised at a safe point (finished work already persisted) when ``should_stop()`` is true."""


def report(progress: Optional[ProgressFn], fraction: float, message: str) -> None:
    if progress is not None:
        progress(min(1.0, max(0.0, fraction)), message)


class Ticker:
    """``due()`` is true at most once per ``interval_s`` (default ``REPORT_INTERVAL_S``) and on the first call."""

    def __init__(self, interval_s: Optional[float] = None) -> None:
        self.interval_s = REPORT_INTERVAL_S if interval_s is None else interval_s
        self._last = -math.inf

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.interval_s:
            return False
        self._last = now
        return True


def labelled(phase: str, message: str) -> str:
    """``message`` led by ``phase`` (unchanged when it already names that phase)."""
    return message if message.startswith(f"{phase}: ") else f"{phase}: {message}"


def phase_of(message: Optional[str]) -> Optional[str]:
    """The phase a progress message names first (``"training"``), or None when it names none."""
    match = _PHASE.match(message or "")
    return match.group(1) if match else None


def remaining_seconds(elapsed_s: float, fraction: float) -> Optional[float]:
    """Seconds left if the rest goes at the pace so far; None while too little is done to tell."""
    if not ETA_MIN_FRACTION <= fraction < 1.0 or elapsed_s <= 0:
        return None if fraction < 1.0 else 0.0
    return elapsed_s * (1.0 - fraction) / fraction


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
    "zero-cost": (.85, 1)})``. A phase missing from ``ranges`` is reported as 0..1. Messages
    are led by their phase (:func:`labelled`).
    """
    def report_phase(phase: str, fraction: float, message: str) -> None:
        start, end = ranges.get(phase, (0.0, 1.0))
        progress(start + (end - start) * fraction, labelled(phase, message))

    return report_phase
