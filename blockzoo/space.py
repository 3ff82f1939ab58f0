"""Search spaces and architecture configs (pure Python, no torch).

A search space is data: the fixed prefix (stem + first block), five searchable stages of
MBConv layers and the head. An :class:`Architecture` picks, per stage, a depth and one
expansion ratio per layer. ``layer_plan`` turns (space, architecture) into the exact channel
counts of every layer; ``blockzoo.nets`` realises that plan as torch modules and
``blockzoo.cost_model`` counts it, so the two can never disagree.

Canonical architecture id (URL-safe, round-trips through :meth:`SearchSpace.parse`)::

    d42314-e6642.a8.442.6.888a
     |      |
     |      +-- per stage, its expansion ratios, one base-36 digit each (10 -> "a"),
     |          stages separated by "."
     +-- one base-36 digit per stage: its depth

The canonical id of one stage's candidate block is its expansion digits, e.g. ``"6642"``.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any, Iterable, Sequence

ACTIVATIONS = ("relu", "hswish")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


class ArchitectureError(ValueError):
    """An architecture (or space definition) that the space does not allow."""


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor`` without losing more than 10% (MobileNet rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _digit(value: int) -> str:
    if not 0 <= value < len(_DIGITS):
        raise ArchitectureError(f"value {value} cannot be written as one base-36 digit")
    return _DIGITS[value]


@dataclass(frozen=True, order=True)
class Architecture:
    """One candidate network: per stage a depth and an expansion ratio per layer."""

    depths: tuple[int, ...]
    expand: tuple[tuple[int, ...], ...]

    @property
    def id(self) -> str:
        depths = "".join(_digit(d) for d in self.depths)
        return f"d{depths}-e" + ".".join(block_code(e) for e in self.expand)

    def to_dict(self) -> dict[str, Any]:
        return {"depths": list(self.depths), "expand": [list(e) for e in self.expand]}

    def block(self, stage: int) -> tuple[int, ...]:
        """The candidate block this architecture uses in ``stage`` (its expansion ratios)."""
        return self.expand[stage]

    def __str__(self) -> str:
        return self.id


def block_code(expand: Sequence[int]) -> str:
    """Canonical id of one stage's candidate block, e.g. (6, 6, 4, 2) -> "6642"."""
    return "".join(_digit(e) for e in expand)


@dataclass(frozen=True)
class LayerSpec:
    """Exact shape of one MBConv layer of a searchable stage."""

    in_channels: int
    hidden_channels: int
    out_channels: int
    stride: int
    activation: str
    use_se: bool
    se_channels: int  # hidden units of the squeeze-excite, 0 when use_se is False

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


@dataclass(frozen=True)
class SearchSpace:
    """A MobileNetV3-style space (DESIGN §2). Frozen, hashable, JSON round-trippable."""

    name: str
    input_size: int
    stem_channels: int
    widths: tuple[int, ...]
    strides: tuple[int, ...]
    activations: tuple[str, ...]
    use_se: tuple[bool, ...]
    depth_choices: tuple[int, ...] = (1, 2, 3, 4)
    expand_choices: tuple[int, ...] = (2, 4, 6, 8, 10)
    kernel_size: int = 3
    head_channels: int = 960
    feature_channels: int | None = 1280  # the 1x1 "feature mix" after pooling; None = none
    dropout: float = 0.0
    description: str = ""

    def __post_init__(self) -> None:
        _check_space(self)

    # --- (de)serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = list(value)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchSpace":
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ArchitectureError(
                f"unknown search-space field(s) {sorted(unknown)}; allowed: {sorted(known)}"
            )
        values = dict(data)
        try:
            for key in ("widths", "strides", "activations", "use_se", "depth_choices", "expand_choices"):
                if key in values:
                    values[key] = tuple(values[key])
            return cls(**values)
        except ArchitectureError:
            raise
        except (TypeError, ValueError) as exc:  # missing fields, or values of the wrong type (null, text)
            raise ArchitectureError(f"invalid search space: {exc}") from None

    # --- structure -----------------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return len(self.widths)

    def stage_in_channels(self, stage: int) -> int:
        return self.stem_channels if stage == 0 else self.widths[stage - 1]

    def layer_specs(self, stage: int, expand: Sequence[int]) -> list[LayerSpec]:
        """Shapes of the layers of ``stage``'s candidate block with these expansion ratios."""
        specs = []
        cin = self.stage_in_channels(stage)
        for layer, ratio in enumerate(expand):
            hidden = make_divisible(cin * ratio)
            se = self.use_se[stage]
            specs.append(
                LayerSpec(
                    in_channels=cin,
                    hidden_channels=hidden,
                    out_channels=self.widths[stage],
                    stride=self.strides[stage] if layer == 0 else 1,
                    activation=self.activations[stage],
                    use_se=se,
                    se_channels=make_divisible(hidden / 4) if se else 0,
                )
            )
            cin = self.widths[stage]
        return specs

    def layer_plan(self, arch: Architecture) -> list[list[LayerSpec]]:
        self.validate(arch)
        return [self.layer_specs(m, arch.expand[m]) for m in range(self.num_stages)]

    def output_size(self, stage: int) -> int:
        """Spatial size of the feature map leaving ``stage`` (-1: leaving the prefix)."""
        size = self.input_size
        for m in range(stage + 1):
            size = (size - 1) // self.strides[m] + 1  # 3x3 conv, padding 1
        return size

    # --- architectures -------------------------------------------------------------------
    @cached_property
    def reference(self) -> Architecture:
        """The largest architecture: the one the paper trains as the reference network."""
        d, e = max(self.depth_choices), max(self.expand_choices)
        return Architecture((d,) * self.num_stages, ((e,) * d,) * self.num_stages)

    @cached_property
    def smallest(self) -> Architecture:
        d, e = min(self.depth_choices), min(self.expand_choices)
        return Architecture((d,) * self.num_stages, ((e,) * d,) * self.num_stages)

    @cached_property
    def size(self) -> int:
        per_stage = sum(len(self.expand_choices) ** d for d in self.depth_choices)
        return per_stage**self.num_stages

    def stage_blocks(self, stage: int) -> list[tuple[int, ...]]:
        """Every candidate block of ``stage`` (all depths, all ratio tuples): 780 by default."""
        del stage  # every stage offers the same choices; kept for a per-stage future
        return [
            tuple(e)
            for d in sorted(self.depth_choices)
            for e in itertools.product(sorted(self.expand_choices), repeat=d)
        ]

    def validate(self, arch: Architecture) -> Architecture:
        if len(arch.depths) != self.num_stages or len(arch.expand) != self.num_stages:
            raise ArchitectureError(
                f"space '{self.name}' has {self.num_stages} stages: give {self.num_stages} depths "
                f"and {self.num_stages} expansion lists (got {len(arch.depths)} and {len(arch.expand)})"
            )
        for m, (depth, ratios) in enumerate(zip(arch.depths, arch.expand), start=1):
            if depth not in self.depth_choices:
                raise ArchitectureError(
                    f"stage {m}: depth {depth} is not allowed; allowed depths: {list(self.depth_choices)}"
                )
            if len(ratios) != depth:
                raise ArchitectureError(
                    f"stage {m}: depth is {depth} but {len(ratios)} expansion ratios were given; "
                    "give one ratio per layer"
                )
            for layer, ratio in enumerate(ratios, start=1):
                if ratio not in self.expand_choices:
                    raise ArchitectureError(
                        f"stage {m}, layer {layer}: expansion ratio {ratio!r} is not allowed; "
                        f"allowed ratios: {list(self.expand_choices)}"
                    )
        return arch

    def parse(self, obj: Any) -> Architecture:
        """An Architecture from a config dict, a canonical id string or an Architecture."""
        if isinstance(obj, Architecture):
            return self.validate(obj)
        if isinstance(obj, str):
            return self.validate(self._parse_id(obj))
        if isinstance(obj, dict):
            extra = set(obj) - {"depths", "expand"}
            if extra or "expand" not in obj:
                raise ArchitectureError(
                    'an architecture is {"depths": [...], "expand": [[...], ...]} '
                    f"(one expansion list per stage) or a canonical id string; got keys {sorted(obj)}"
                )
            try:
                expand = tuple(tuple(int(e) for e in stage) for stage in obj["expand"])
            except (TypeError, ValueError):
                raise ArchitectureError(
                    "expand must be a list with one list of integer expansion ratios per stage"
                ) from None
            depths = obj.get("depths")
            if depths is None:
                depths = [len(e) for e in expand]
            try:
                depths = tuple(int(d) for d in depths)
            except (TypeError, ValueError):
                raise ArchitectureError("depths must be a list of integers, one per stage") from None
            return self.validate(Architecture(depths, expand))
        raise ArchitectureError(
            f"cannot read an architecture from {type(obj).__name__}; give a config dict or an id string"
        )

    def _parse_id(self, text: str) -> Architecture:
        hint = "expected an id like 'd42314-e6642.a8.442.6.888a'"
        if not (text.startswith("d") and "-e" in text):
            raise ArchitectureError(f"malformed architecture id {text!r}; {hint}")
        depth_part, expand_part = text[1:].split("-e", 1)
        try:
            depths = tuple(_DIGITS.index(c) for c in depth_part)
            expand = tuple(tuple(_DIGITS.index(c) for c in part) for part in expand_part.split("."))
        except ValueError:
            raise ArchitectureError(f"malformed architecture id {text!r}; {hint}") from None
        return Architecture(depths, expand)

    def sample(self, rng: random.Random) -> Architecture:
        """Per stage a uniform depth, then a uniform expansion ratio per layer (the paper's rule)."""
        depths, expand = [], []
        for _ in range(self.num_stages):
            d = rng.choice(self.depth_choices)
            depths.append(d)
            expand.append(tuple(rng.choice(self.expand_choices) for _ in range(d)))
        return Architecture(tuple(depths), tuple(expand))

    def mutate(self, arch: Architecture, rng: random.Random, prob: float = 0.1) -> Architecture:
        """Resample each stage's depth and each layer's ratio with probability ``prob`` (OFA-style)."""
        depths, expand = [], []
        for d, ratios in zip(arch.depths, arch.expand):
            if rng.random() < prob:
                d = rng.choice(self.depth_choices)
            new = []
            for layer in range(d):
                old = ratios[layer] if layer < len(ratios) else None
                if old is None or rng.random() < prob:
                    new.append(rng.choice(self.expand_choices))
                else:
                    new.append(old)
            depths.append(d)
            expand.append(tuple(new))
        return Architecture(tuple(depths), tuple(expand))

    def crossover(self, a: Architecture, b: Architecture, rng: random.Random) -> Architecture:
        """Each stage's depth from either parent, each layer's ratio from a parent that has it."""
        depths, expand = [], []
        for da, db, ea, eb in zip(a.depths, b.depths, a.expand, b.expand):
            d = rng.choice((da, db))
            ratios = []
            for layer in range(d):
                options = [e[layer] for e in (ea, eb) if layer < len(e)]
                ratios.append(rng.choice(options))
            depths.append(d)
            expand.append(tuple(ratios))
        return Architecture(tuple(depths), tuple(expand))


def _check_space(space: SearchSpace) -> None:
    n = len(space.widths)
    if n == 0:
        raise ArchitectureError("a search space needs at least one stage")
    for key in ("strides", "activations", "use_se"):
        if len(getattr(space, key)) != n:
            raise ArchitectureError(f"'{key}' needs one entry per stage ({n}), got {len(getattr(space, key))}")
    bad_act = [a for a in space.activations if a not in ACTIVATIONS]
    if bad_act:
        raise ArchitectureError(f"unknown activation(s) {bad_act}; allowed: {list(ACTIVATIONS)}")
    if any(s not in (1, 2) for s in space.strides):
        raise ArchitectureError("stage strides must be 1 or 2")
    if not space.depth_choices or min(space.depth_choices) < 1 or max(space.depth_choices) > 35:
        raise ArchitectureError("depth_choices must be integers between 1 and 35")
    if not space.expand_choices or min(space.expand_choices) < 1 or max(space.expand_choices) > 35:
        raise ArchitectureError("expand_choices must be integers between 1 and 35")
    if space.kernel_size != 3:
        raise ArchitectureError("only kernel_size 3 is supported (the paper's space)")
    if space.input_size < 4 or space.input_size > 1024:
        raise ArchitectureError("input_size must be between 4 and 1024 pixels")
    if not 0.0 <= space.dropout < 1.0:
        raise ArchitectureError("dropout must be in [0, 1)")
    if space.stem_channels < 1 or min(space.widths) < 1 or space.head_channels < 1:
        raise ArchitectureError("channel counts must be positive")


_MBV3_STAGES = dict(
    strides=(1, 2, 2, 1, 2),
    activations=("relu", "relu", "hswish", "hswish", "hswish"),
    use_se=(False, True, False, True, True),
)

PRESETS: dict[str, SearchSpace] = {
    "mbv3-cifar": SearchSpace(
        name="mbv3-cifar",
        input_size=32,
        stem_channels=16,
        widths=(24, 40, 80, 112, 160),
        head_channels=960,
        feature_channels=1280,
        dropout=0.1,
        description="The paper's MobileNetV3 space adapted to 32x32 input (total stride 8).",
        **_MBV3_STAGES,
    ),
    "mbv3-tiny": SearchSpace(
        name="mbv3-tiny",
        input_size=16,
        stem_channels=8,
        widths=(8, 16, 24, 32, 40),
        head_channels=240,
        feature_channels=None,
        dropout=0.0,
        description="Same structure at width x0.25 and 16x16 input: the CPU preset for tests and demos.",
        **_MBV3_STAGES,
    ),
}


def list_spaces() -> list[str]:
    return sorted(PRESETS)


def get_space(name: str) -> SearchSpace:
    try:
        return PRESETS[name]
    except KeyError:
        raise ArchitectureError(f"unknown search space {name!r}; known spaces: {list_spaces()}") from None


def sample_architectures(space: SearchSpace, count: int, seed: int) -> list[Architecture]:
    """``count`` architectures drawn with ``space.sample`` from one seeded generator."""
    rng = random.Random(seed)
    return [space.sample(rng) for _ in range(count)]


def unique(archs: Iterable[Architecture]) -> list[Architecture]:
    """Architectures in first-seen order without repeats."""
    return list(dict.fromkeys(archs))
