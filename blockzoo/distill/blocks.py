"""Few-batch block knowledge distillation (paper Eq. 3–4), organised around a stage.

For stage ``m`` the reference provides, per KD batch, the feature entering the stage
(``π̃_{m-1}``) and the feature leaving it (``π̃_m``). Those teacher pairs are computed once
(:func:`teacher_features`) and shared by every candidate block of the stage; the candidate
blocks of a stage are then trained *together*: one forward per block, one summed loss, one
backward and one optimizer step per KD batch for a whole chunk of blocks. Because the blocks
share no parameters, the summed loss gives every block exactly the gradient of its own loss:
a block distilled alone (lazy build) is bit-identical to the same block distilled with its
whole stage (eager build).

Loss: ``F.mse_loss`` (the mean over batch, channels and pixels). Eq. 3 sums over pixels and
divides by ``C`` only; the two differ by a constant factor that the learning rate absorbs.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Callable, Hashable, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nets import Network
from ..progress import StopFn, check_stop
from ..distill_recipe import ENGINES, INITS, OPTIMIZERS, DistillRecipe  # noqa: F401  (the recipe, re-exported)

@dataclass
class StageTeacher:
    """The reference's feature entering (``inputs``) and leaving (``targets``) one stage, per batch."""

    inputs: list[torch.Tensor]
    targets: list[torch.Tensor]


@dataclass(frozen=True)
class DistillStats:
    kd_loss: float        # mean training MSE over the T steps
    first_loss: float     # MSE on the first KD batch, before any update (the PR-only error)
    last_loss: float      # MSE on the last KD batch (before its update)
    steps: int

    def to_metadata(self) -> dict[str, str]:
        return {k: repr(v) for k, v in asdict(self).items()}

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str]) -> "DistillStats":
        return cls(float(meta["kd_loss"]), float(meta["first_loss"]), float(meta["last_loss"]),
                   int(meta["steps"]))

    @classmethod
    def from_losses(cls, losses: torch.Tensor, steps: int) -> "DistillStats":
        """Stats of one block from its per-step losses (``losses[:steps]``; NaN when no step ran)."""
        if not steps:
            return cls(float("nan"), float("nan"), float("nan"), 0)
        return cls(float(losses[:steps].mean()), float(losses[0]), float(losses[steps - 1]), steps)


@torch.no_grad()
def teacher_features(reference: Network, batches: Sequence[torch.Tensor]) -> list[StageTeacher]:
    """Per stage, the reference's (input, output) features on each batch; reference in eval mode."""
    was_training = reference.training
    reference.eval()
    try:
        per_batch = [reference.stage_features(x) for x in batches]
    finally:
        reference.train(was_training)
    return [
        StageTeacher([f[m] for f in per_batch], [f[m + 1] for f in per_batch])
        for m in range(len(reference.stages))
    ]


def make_optimizer(params: list[nn.Parameter], recipe: DistillRecipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum,
                           weight_decay=recipe.weight_decay)


def distill_blocks(blocks: Mapping[Hashable, nn.Module], teacher: StageTeacher, recipe: DistillRecipe,
                   should_stop: Optional[StopFn] = None,
                   on_chunk_done: Optional[Callable[[dict[Hashable, DistillStats]], None]] = None,
                   ) -> dict[Hashable, DistillStats]:
    """Train ``blocks`` (in place) to match the teacher's stage output, T steps each (Eq. 4).

    Blocks are processed in chunks of ``recipe.chunk_size``; after each chunk
    ``on_chunk_done`` receives its stats (so callers persist finished blocks before the next
    chunk starts) and ``should_stop`` is checked.
    """
    keys = list(blocks)
    stats: dict[Hashable, DistillStats] = {}
    steps = min(recipe.batches, len(teacher.inputs))
    for start in range(0, len(keys), recipe.chunk_size):
        chunk = keys[start:start + recipe.chunk_size]
        modules = [blocks[k] for k in chunk]
        for module in modules:
            module.train()  # BN in train mode during KD (DESIGN §3)
        params = [p for module in modules for p in module.parameters()]
        optimizer = make_optimizer(params, recipe)
        history = torch.zeros(len(chunk), max(steps, 1), device=teacher.inputs[0].device if steps else None)
        for t in range(steps):
            x, y = teacher.inputs[t], teacher.targets[t]
            losses = torch.stack([F.mse_loss(module(x), y) for module in modules])
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            optimizer.step()
            history[:, t] = losses.detach()
        chunk_stats = {key: DistillStats.from_losses(history[i], steps) for i, key in enumerate(chunk)}
        stats.update(chunk_stats)
        if on_chunk_done is not None:
            on_chunk_done(chunk_stats)
        check_stop(should_stop)
    return stats


@torch.no_grad()
def block_mse(block: nn.Module, inputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> float:
    """Mean MSE of ``block`` against the teacher, with batch-statistics BN, on a copy (no side effects)."""
    probe = copy.deepcopy(block).train()
    errors = [F.mse_loss(probe(x), y).item() for x, y in zip(inputs, targets)]
    return sum(errors) / max(len(errors), 1)
