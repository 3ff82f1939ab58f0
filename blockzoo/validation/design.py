"""Which architectures a validation trains (its sampling design), and at which input size.

* ``uniform`` — the paper's rule (``SearchSpace.sample``: per stage a uniform depth, then a
  uniform expansion ratio per layer) from one seeded generator; the reference, which every
  proxy is built from, is never a candidate. Answers "does the signal rank this space?".
* ``budget_band`` — the same draws kept only when their MACs lie within ±``band`` of a target:
  the architectures a user chooses between at one budget, where MACs cannot rank them.
* ``explicit`` — a list of architecture ids the user names.

No torch.
"""

from __future__ import annotations

import random
from typing import Iterable, Optional

from ..search import blockwise_cost_fn
from ..space import Architecture, SearchSpace

DESIGNS = ("uniform", "budget_band")
# A budget band keeps drawing until it has K architectures or has looked at this many per one wanted.
MAX_DRAWS_PER_ARCH = 2_000


def resized_space(space: SearchSpace, input_size: Optional[int]) -> SearchSpace:
    """``space`` with another input size (same modules, same sampling; name ``<name>@<size>``)."""
    if not input_size or input_size == space.input_size:
        return space
    return SearchSpace.from_dict({**space.to_dict(), "name": f"{space.name}@{input_size}", "input_size": input_size})


def _draws(space: SearchSpace, seed: int) -> Iterable[Architecture]:
    rng = random.Random(seed)
    while True:
        yield space.sample(rng)


def uniform(space: SearchSpace, k: int, seed: int) -> list[Architecture]:
    """The first ``k`` distinct non-reference architectures drawn by the paper's rule with ``seed``."""
    chosen: list[Architecture] = []
    for arch in _draws(space, seed):
        if len(chosen) == k:
            break
        if arch != space.reference and arch not in chosen:
            chosen.append(arch)
    return chosen


def budget_band(space: SearchSpace, k: int, seed: int, target_macs: float, band: float, *,
                in_channels: int = 3, num_classes: int = 10) -> list[Architecture]:
    """The first ``k`` distinct non-reference architectures drawn by the paper's rule with ``seed``
    whose MACs (for ``in_channels`` × ``num_classes``) lie within ``target_macs`` × (1 ± ``band``)."""
    if not 0 < band < 1:
        raise ValueError(f"band is a fraction of the target MACs in (0, 1), e.g. 0.1 for ±10 %; got {band}")
    if target_macs <= 0:
        raise ValueError(f"target_macs must be positive, got {target_macs}")
    low, high = target_macs * (1 - band), target_macs * (1 + band)
    macs = blockwise_cost_fn(space, in_channels, num_classes)  # cost_model.cost's numbers, memoised per block
    reference_macs, smallest_macs = macs(space.reference).macs, macs(space.smallest).macs
    if high < smallest_macs or low > reference_macs:
        raise ValueError(f"no architecture of {space.name} has MACs within ±{100 * band:g} % of {target_macs:,.0f}: "
                         f"they range from {smallest_macs:,} (the smallest) to {reference_macs:,} (the reference); widen the "
                         "band or move the target into that range")
    chosen: list[Architecture] = []
    max_draws = MAX_DRAWS_PER_ARCH * k
    for n, arch in enumerate(_draws(space, seed)):
        if len(chosen) == k:
            break
        if n >= max_draws:
            raise ValueError(
                f"only {len(chosen)} of {k} architectures of {space.name} have MACs within ±{100 * band:g} % of "
                f"{target_macs:,.0f} after {max_draws:,} draws; widen the band or move the target towards "
                f"the space's typical MACs (the reference has {reference_macs:,})")
        if arch == space.reference or arch in chosen:
            continue
        if low <= macs(arch).macs <= high:
            chosen.append(arch)
    return chosen


def explicit(space: SearchSpace, ids: Iterable[str]) -> list[Architecture]:
    """The named architectures, parsed (and so validated) against ``space``, repeats removed."""
    archs = [space.parse(i) for i in ids]
    return list(dict.fromkeys(archs))
