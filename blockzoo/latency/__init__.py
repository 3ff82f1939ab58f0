"""Latency lookup tables: per-block latency measured on one device, summed to predict a network's.

``blockzoo.latency.table`` is the table as data (read, check, predict, write; pure Python, so
the API process uses it without torch); ``blockzoo.latency.measure`` measures tables, networks
and calibrations with torch. The measuring names below load torch on first use only.
"""

from __future__ import annotations

from typing import Any

from .table import (
    TABLE_VERSION, BlockKey, Calibration, CalibrationPoint, LatencyTable, LatencyTableError, Timing,
    count_blocks, same_structure,
)

_MEASURING = ("MEASURE_CHUNK", "calibrate", "can_measure", "check_timing", "fit_scale", "machine_description",
              "measure_calibrated_table", "measure_many", "measure_ms", "measure_networks_ms", "measure_parts",
              "measure_table")

__all__ = ["TABLE_VERSION", "BlockKey", "Calibration", "CalibrationPoint", "LatencyTable", "LatencyTableError",
           "Timing", "count_blocks", "same_structure", *_MEASURING]


def __getattr__(name: str) -> Any:
    if name in _MEASURING:
        from . import measure

        return getattr(measure, name)
    raise AttributeError(f"module 'blockzoo.latency' has no attribute {name!r}")
