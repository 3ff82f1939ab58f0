"""Validation: train a sample of architectures and measure how well every signal ranks them.

* :mod:`.design` — which architectures (``uniform``, ``budget_band``, ``explicit``);
* :mod:`.groundtruth` — the resumable, cached training of one (architecture, init, seed);
* :mod:`.statistics` — rank correlations with bootstrap intervals, paired differences, seed noise;
* :mod:`.report` — the report of one validation and its generated verdict.

Importing this package does not import torch; the ground-truth trainer (torch) loads on first use.
"""

from __future__ import annotations

from typing import Any

from .design import DESIGNS, budget_band, explicit, resized_space, uniform
from .report import validation_report, verdict
from .statistics import (
    correlate, noise_decomposition, paired_difference, project_ceiling, rank_correlation, seed_projection,
    seed_reliability, spearman_brown,
)

_GROUNDTRUTH = ("GroundTruth", "GroundTruthRecipe", "Training", "INITS", "default_recipe", "test_outcomes",
                "unpack_correct")

__all__ = [
    "DESIGNS", "budget_band", "correlate", "explicit", "noise_decomposition", "paired_difference",
    "project_ceiling", "rank_correlation", "resized_space", "seed_projection", "seed_reliability",
    "spearman_brown", "uniform", "validation_report", "verdict", *_GROUNDTRUTH,
]


def __getattr__(name: str) -> Any:
    if name in _GROUNDTRUTH:
        from . import groundtruth

        return getattr(groundtruth, name)
    raise AttributeError(f"module 'blockzoo.validation' has no attribute {name!r}")
