"""The committed protocols: what is sampled, trained and compared, fixed before any result.

Changing a field that enters a cache key (space, data, recipes, seeds, test subset, device)
makes every cached result of that protocol unreachable; docs/proxy-quality-protocol.md says why
each value is what it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from blockzoo.distill import DistillRecipe
from blockzoo.space import SearchSpace, get_space
from blockzoo.training import TrainRecipe
from blockzoo.validation.design import resized_space
from blockzoo.validation.groundtruth import GroundTruthRecipe

T_SWEEP = (1, 2, 5, 10, 15, 20, 40)
ZERO_COST = ("gradnorm", "fisher", "snip", "synflow", "naswot", "flops", "l2norm", "params")
TARGETS = ("SC", "PR", "KD")
PROXY_GROUPS = ("main", "zero_cost", "sweep", "epoch")
# Variants of the BlockZoo recipe compared on the development set only (docs/proxy-tuning.md):
# name -> changes to the protocol's DistillRecipe. "seed1" draws other KD batches: the spread
# between it and the default is the proxy's own noise.
TUNING_VARIANTS: dict[str, dict[str, Any]] = {
    "tune_seed1": {"seed": 1},
    "tune_sgd_lr0.03": {"lr": 0.03},
    "tune_sgd_lr0.3": {"lr": 0.3},
    "tune_adam_lr1e-3": {"optimizer": "adam", "lr": 1e-3, "momentum": 0.0},
    "tune_remap_l1": {"remap_order": "l1"},
    "tune_T10": {"batches": 10},
    "tune_T40": {"batches": 40},
    "tune_bs128_T10": {"batch_size": 128, "batches": 10},
}


@dataclass(frozen=True)
class Protocol:
    name: str
    space: str
    input_size: int
    train_limit: Optional[int]           # Fashion-MNIST training subset (None: all 60,000)
    test_limit: Optional[int]            # first N test images (None: the full 10,000)
    reference: TrainRecipe
    distill: DistillRecipe               # the BlockZoo recipe (T = distill.batches)
    groundtruth: GroundTruthRecipe
    k: int = 40
    arch_seed: int = 0
    sc_seeds: tuple[int, ...] = (0,)     # SC seeds trained for every architecture (GT = their mean)
    # The ceiling is Spearman ρ between the SC means of two disjoint seed groups; with
    # sc_seeds = the first group it measures how reproducible the ground truth itself is.
    ceiling_groups: tuple[tuple[int, ...], tuple[int, ...]] = ((0,), (1,))
    ceiling_k: int = 12                  # first N architectures trained with every ceiling seed
    finetune_k: int = 20                 # first N architectures trained from PR and KD weights
    # SC seeds trained last, for every architecture, only once everything above is done: they
    # measure the ceiling of the sc_seeds mean directly instead of projecting it.
    extra_seeds: tuple[int, ...] = ()
    t_sweep: tuple[int, ...] = T_SWEEP
    device: str = "cpu"
    note: str = ""
    tier_offset: float = 0.0             # where this protocol's jobs go when several share workers

    @property
    def ceiling_seeds(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.ceiling_groups[0]) | set(self.ceiling_groups[1])))

    @property
    def all_seeds(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.sc_seeds) | set(self.ceiling_seeds) | set(self.extra_seeds)))

    @property
    def space_obj(self) -> SearchSpace:
        return resized_space(get_space(self.space), self.input_size)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "space": self.space_obj.name, "base_space": self.space,
                "input_size": self.input_size, "dataset": "fashion-mnist", "train_limit": self.train_limit,
                "test_limit": self.test_limit, "reference_recipe": self.reference.to_dict(),
                "distill_recipe": self.distill.to_dict(), "groundtruth_recipe": self.groundtruth.to_dict(),
                "k": self.k, "arch_seed": self.arch_seed, "sc_seeds": list(self.sc_seeds),
                "ceiling_groups": [list(g) for g in self.ceiling_groups], "ceiling_k": self.ceiling_k,
                "finetune_k": self.finetune_k, "extra_seeds": list(self.extra_seeds),
                "t_sweep": list(self.t_sweep), "device": self.device, "note": self.note}


# The tuned BlockZoo recipe (docs/proxy-tuning.md): SGD lr 0.1 momentum 0.9, T = 20 batches of 64.
DISTILL = DistillRecipe(batches=20, batch_size=64, optimizer="sgd", lr=0.1, momentum=0.9)

# The CPU-scale protocol's ground truth: full training set, 4 epochs, two SC seeds averaged
# (docs/proxy-quality-protocol.md says why: one 3-epoch seed on a 10k subset was noise-dominated).
# Trained on a GPU when one is lent (cuda if available, else CPU: same recipe, slower).
GROUND_TRUTH = GroundTruthRecipe(epochs=4, batch_size=256, warmup_epochs=0.3)

PROTOCOLS: dict[str, Protocol] = {
    # The committed CPU-scale protocol (docs/proxy-quality-protocol.md explains every choice):
    # SC seeds 0 and 1 on all 40 architectures first (their mean is the ground truth, their
    # single-seed ρ the ceiling, projected to the two-seed mean), then PR/KD fine-tuning of the
    # first 20, then seeds 2 and 3 if time allows.
    "cpu": Protocol(
        name="cpu", space="mbv3-tiny", input_size=28, train_limit=None, test_limit=None,
        reference=TrainRecipe(epochs=10, batch_size=256), distill=DISTILL, groundtruth=GROUND_TRUTH,
        sc_seeds=(0, 1), ceiling_groups=((0,), (1,)), ceiling_k=40, finetune_k=20, extra_seeds=(2, 3),
        device="cuda",
        note="mbv3-tiny structure at 28x28 Fashion-MNIST (no downsampling), all 60,000 training images, full test set",
    ),
    # Development architectures (seed 1) for tuning; same data, reference and ground-truth recipe.
    "dev": Protocol(
        name="dev", space="mbv3-tiny", input_size=28, train_limit=None, test_limit=None,
        reference=TrainRecipe(epochs=10, batch_size=256), distill=DISTILL, groundtruth=GROUND_TRUTH,
        k=20, arch_seed=1, sc_seeds=(0, 1), ceiling_groups=((0,), (1,)), ceiling_k=20, finetune_k=0,
        t_sweep=(5, 20), device="cuda", tier_offset=2.5,
        note="development set for tuning: never used for the reported numbers",
    ),
    # A smoke run of every stage at toy scale (<= 15 minutes); not evidence of anything.
    "quick": Protocol(
        name="quick", space="mbv3-tiny", input_size=16, train_limit=2_000, test_limit=2_000,
        reference=TrainRecipe(epochs=3), distill=DISTILL,
        groundtruth=GroundTruthRecipe(epochs=1, warmup_epochs=0.2), k=8, ceiling_k=8, finetune_k=4,
        t_sweep=(5, 20),
        note="QUICK smoke run: toy data and training, numbers are not evidence",
    ),
    # The paper's space for a lent GPU machine (Fashion-MNIST resized to 32x32); sized to ~15 min.
    "gpu": Protocol(
        name="gpu", space="mbv3-cifar", input_size=32, train_limit=None, test_limit=None,
        reference=TrainRecipe(epochs=5, batch_size=256), distill=DISTILL,
        groundtruth=GroundTruthRecipe(epochs=2, batch_size=256, warmup_epochs=0.2), k=40,
        ceiling_k=10, finetune_k=10, device="cuda",
        note="mbv3-cifar on Fashion-MNIST resized to 32x32, for a lent GPU; sized to its 15-minute budget",
    ),
}
