"""Validation: train a sample of architectures and measure how well every signal ranks them.

* :mod:`.design` — which architectures (``uniform``, ``budget_band``, ``explicit``);
* :mod:`.recipe` — how they are trained (the ground-truth recipe and its defaults per space);
* :mod:`.plan` — one validation's architectures, seeds and recipe, and its trainings;
* :mod:`.groundtruth` — the resumable, cached training of one (architecture, init, seed);
* :mod:`.claims` — one holder per training across threads, processes and containers;
* :mod:`.statistics` — rank correlations with bootstrap intervals, paired differences, seed noise;
* :mod:`.report` — the report of one validation and its generated verdict;
* :mod:`.signals` — every signal of a validation's architectures, measured on its zoo;
* :mod:`.pipeline` — a whole validation in one process (the CLI) and the report with its plot;
* :mod:`.plot` — the picture of a report.

Importing this package does not import torch; the ground-truth trainer (torch) loads on first use.
"""

from __future__ import annotations

from typing import Any

from .design import DESIGNS, budget_band, explicit, resized_space, uniform
from .recipe import GroundTruthRecipe, default_recipe
from .report import validation_report, verdict
from .statistics import (
    correlate, noise_decomposition, paired_difference, project_ceiling, rank_correlation, seed_projection,
    seed_reliability, spearman_brown,
)

_GROUNDTRUTH = ("GroundTruth", "Training", "INITS", "test_outcomes", "unpack_correct")

__all__ = [
    "DESIGNS", "GroundTruthRecipe", "budget_band", "correlate", "default_recipe", "explicit", "noise_decomposition",
    "paired_difference", "project_ceiling", "rank_correlation", "resized_space", "seed_projection", "seed_reliability",
    "spearman_brown", "uniform", "validation_report", "verdict", *_GROUNDTRUTH,
]


def __getattr__(name: str) -> Any:
    if name in _GROUNDTRUTH:
        from . import groundtruth

        return getattr(groundtruth, name)
    raise AttributeError(f"module 'blockzoo.validation' has no attribute {name!r}")
