"""Few-batch block knowledge distillation (paper Eq. 3–4): the recipe and its two engines.

- ``blocks``   the recipe (``DistillRecipe``), the stage teachers shared by every candidate block
  of a stage, and the "loop" engine (one forward per block, one summed loss per KD batch);
- ``stacked``  the default "stacked" engine: a stage's candidate blocks packed into one
  computation, same math as the loop engine.
"""

from __future__ import annotations

from .blocks import (
    ENGINES,
    INITS,
    OPTIMIZERS,
    DistillRecipe,
    DistillStats,
    StageTeacher,
    block_mse,
    distill_blocks,
    make_optimizer,
    teacher_features,
)
from .stacked import StackedBlocks, candidate_activation_bytes, distill_stacked, plan_chunks

__all__ = [
    "ENGINES", "INITS", "OPTIMIZERS", "DistillRecipe", "DistillStats", "StackedBlocks",
    "StageTeacher", "block_mse", "candidate_activation_bytes", "distill_blocks",
    "distill_stacked", "make_optimizer", "plan_chunks", "teacher_features",
]
