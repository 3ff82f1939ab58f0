"""One validation's plan: which architectures, which seeds, which recipe — fixed before any training.

A plan is made once (:func:`plan_validation`, which checks everything a user can get wrong and
says what is accepted) and stored; every worker that trains part of the validation rebuilds the
same plan from its JSON (:meth:`ValidationPlan.from_dict`). Its trainings are ordered seed-major
(every architecture with the first seed, then with the next), so that the first seed's results
are complete first.

Pure: no torch, so the API process can make and check plans.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Optional, Union

from ..space import Architecture, SearchSpace
from .design import budget_band, explicit, uniform
from .recipe import GroundTruthRecipe, default_recipe

DESIGN_NAMES = ("uniform", "budget_band", "explicit")
MIN_ARCHS = 3      # a rank correlation needs three points (intervals need four: see statistics)
MAX_ARCHS = 100
MAX_SEEDS = 5
MAX_TRAININGS = 200

RecipeOverrides = Union[GroundTruthRecipe, Mapping[str, Any], None]


@dataclass(frozen=True)
class ValidationPlan:
    archs: tuple[Architecture, ...]
    seeds: tuple[int, ...]
    recipe: GroundTruthRecipe
    design: dict[str, Any]  # {"name": ..., and what drew the architectures: arch_seed, target_macs, tolerance}

    @property
    def units(self) -> list[tuple[Architecture, int]]:
        """Every (architecture, seed) to train, seed-major."""
        return [(arch, seed) for seed in self.seeds for arch in self.archs]

    def to_dict(self) -> dict[str, Any]:
        return {"design": dict(self.design), "architectures": [a.id for a in self.archs], "seeds": list(self.seeds),
                "recipe": self.recipe.to_dict()}

    @classmethod
    def from_dict(cls, space: SearchSpace, data: Mapping[str, Any]) -> "ValidationPlan":
        return cls(archs=tuple(space.parse(a) for a in data["architectures"]), seeds=tuple(data["seeds"]),
                   recipe=GroundTruthRecipe.from_dict(data["recipe"]), design=dict(data["design"]))


def recipe_problems(recipe: GroundTruthRecipe) -> list[str]:
    """What is wrong with a ground-truth recipe (empty: nothing)."""
    problems = []
    if not recipe.epochs > 0:
        problems.append(f"epochs must be positive, got {recipe.epochs}")
    if recipe.batch_size < 1:
        problems.append(f"batch_size must be at least 1, got {recipe.batch_size}")
    if not recipe.lr > 0:
        problems.append(f"lr must be positive, got {recipe.lr}")
    if not 0 <= recipe.momentum < 1:
        problems.append(f"momentum must be in [0, 1), got {recipe.momentum}")
    if recipe.weight_decay < 0:
        problems.append(f"weight_decay must be >= 0, got {recipe.weight_decay}")
    if not 0 <= recipe.label_smoothing < 1:
        problems.append(f"label_smoothing must be in [0, 1), got {recipe.label_smoothing}")
    if recipe.warmup_epochs < 0:
        problems.append(f"warmup_epochs must be >= 0, got {recipe.warmup_epochs}")
    return problems


def resolve_recipe(space: SearchSpace, recipe: RecipeOverrides = None) -> GroundTruthRecipe:
    """The space's default recipe with ``recipe``'s fields (a mapping of overrides), or ``recipe`` itself."""
    if isinstance(recipe, GroundTruthRecipe):
        resolved = recipe
    else:
        base = default_recipe(space.name)
        resolved = replace(base, **GroundTruthRecipe.from_dict({**base.to_dict(), **(recipe or {})}).to_dict())
    problems = recipe_problems(resolved)
    if problems:
        raise ValueError("invalid ground-truth recipe: " + "; ".join(problems))
    return resolved


def plan_validation(space: SearchSpace, *, design: str = "uniform", k: Optional[int] = None, seeds: int = 1,
                    arch_seed: int = 0, target_macs: Optional[float] = None, tolerance: Optional[float] = None,
                    architectures: Iterable[Union[str, Mapping[str, Any], Architecture]] = (),
                    recipe: RecipeOverrides = None, in_channels: int = 3, num_classes: int = 10) -> ValidationPlan:
    """The plan of a validation of ``space``; ValueError saying what is wrong and what is accepted.

    ``design``: ``uniform`` (``k`` architectures drawn by the paper's rule with ``arch_seed``),
    ``budget_band`` (``k`` drawn the same way whose MACs lie within ``target_macs`` × (1 ±
    ``tolerance``)) or ``explicit`` (``architectures``, ids or configs). ``seeds``: S, the number
    of training seeds (0 … S−1) per architecture. ``recipe``: a :class:`GroundTruthRecipe`, or
    overrides of the space's default one.
    """
    if design not in DESIGN_NAMES:
        raise ValueError(f"unknown design {design!r}; known: {', '.join(DESIGN_NAMES)}")
    if not 1 <= seeds <= MAX_SEEDS:
        raise ValueError(f"seeds is the number of training seeds per architecture, 1 to {MAX_SEEDS}; got {seeds}")
    resolved = resolve_recipe(space, recipe)
    listed = list(architectures)
    if design == "explicit":
        if not listed:
            raise ValueError("design 'explicit' needs 'architectures': the ids or configs to train")
        archs = explicit(space, listed)
        if k is not None and k != len(archs):
            raise ValueError(f"k = {k} but {len(archs)} distinct architectures are listed; leave k out for "
                             "design 'explicit'")
        drawn: dict[str, Any] = {"name": design}
    else:
        if listed:
            raise ValueError(f"'architectures' is for design 'explicit'; design {design!r} draws its own")
        k = 10 if k is None else k
        _check_k(k)
        if space.size - 1 < k:  # the draws below would never find k distinct architectures
            raise ValueError(f"space {space.name!r} has only {space.size - 1} architectures other than the "
                             f"reference; ask for k <= {space.size - 1}")
        if design == "uniform":
            archs = uniform(space, k, arch_seed)
            drawn = {"name": design, "arch_seed": arch_seed}
        else:
            if target_macs is None or tolerance is None:
                raise ValueError("design 'budget_band' needs a target_macs (MACs per image at the band's centre) and "
                                 "a tolerance (the band's half-width as a fraction, e.g. 0.1 for ±10 %)")
            archs = budget_band(space, k, arch_seed, target_macs, tolerance, in_channels=in_channels,
                                num_classes=num_classes)
            drawn = {"name": design, "arch_seed": arch_seed, "target_macs": target_macs, "tolerance": tolerance}
    _check_k(len(archs))
    if len(archs) * seeds > MAX_TRAININGS:
        raise ValueError(f"{len(archs)} architectures x {seeds} seeds = {len(archs) * seeds} trainings; at most "
                         f"{MAX_TRAININGS} per validation")
    return ValidationPlan(archs=tuple(archs), seeds=tuple(range(seeds)), recipe=resolved, design=drawn)


def _check_k(k: int) -> None:
    if not MIN_ARCHS <= k <= MAX_ARCHS:
        raise ValueError(f"a validation trains {MIN_ARCHS} to {MAX_ARCHS} architectures, got {k} "
                         "(intervals need at least 4; the verdict says what a sample of this size can show)")

