"""The distill recipe: how candidate blocks are distilled, and what data that takes (pure).

Kept apart from the KD engines (``blockzoo.distill``, torch) so that the service can check a
recipe against a dataset before accepting a zoo (the API process imports no torch), with the
same rule :meth:`blockzoo.zoo.KDData.select` applies when it draws the KD batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from .recipe import Recipe, optimizer_problems

OPTIMIZERS = ("sgd", "adam")
INITS = ("remap", "random")
ENGINES = ("stacked", "loop")


@dataclass(frozen=True)
class DistillRecipe(Recipe):
    """How the block zoo is distilled. Defaults: the paper's T=20 batches (see docs/proxy-tuning.md)."""

    kind: ClassVar[str] = "distill recipe"

    batches: int = 20            # T: KD batches, each seen once
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0                # picks the KD batches
    remap_order: str = "first"   # "first" (paper) or "l1" (importance-sorted channels)
    init: str = "remap"          # "remap" (PR + KD) or "random" (KD-only ablation)
    heldout_batches: int = 2     # extra batches for held-out signals, never trained on
    chunk_size: int = 16         # loop engine: blocks trained together in one backward (memory knob)
    # "stacked": a stage's candidate blocks packed into one computation (blockzoo.distill.stacked,
    # the faster one: docs/core-api.md, "Speed notes"); "loop": one forward per block.
    # Both train the same math; results agree to float rounding, each engine is deterministic.
    engine: str = "stacked"

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.batches <= 10_000:
            problems.append("batches must be between 0 and 10000")
        if not 1 <= self.batch_size <= 4096:
            problems.append("batch_size must be between 1 and 4096")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {list(OPTIMIZERS)}")
        problems += optimizer_problems(self.lr, self.momentum, self.weight_decay)
        if self.remap_order not in ("first", "l1"):
            problems.append("remap_order must be 'first' or 'l1'")
        if self.init not in INITS:
            problems.append(f"init must be one of {list(INITS)}")
        if not 0 <= self.heldout_batches <= 1000:
            problems.append("heldout_batches must be between 0 and 1000")
        if self.chunk_size < 1:
            problems.append("chunk_size must be >= 1")
        if self.engine not in ENGINES:
            problems.append(f"engine must be one of {list(ENGINES)}")
        if problems:
            raise ValueError("invalid distill recipe: " + "; ".join(problems))

    @property
    def training_images_needed(self) -> int:
        """Training images the KD batches and the held-out batches take (each image once)."""
        return (self.batches + self.heldout_batches) * self.batch_size

    def training_images_problem(self, available: int) -> Optional[str]:
        """Why a training split of ``available`` images is too small for this recipe (None: it fits)."""
        needed = self.training_images_needed
        if needed <= available:
            return None
        return (f"the recipe needs {needed} training images ({self.batches} KD + {self.heldout_batches} "
                f"held-out batches of {self.batch_size}) but the dataset has {available}; lower batches or "
                f"batch_size")
