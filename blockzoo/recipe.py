"""The shared JSON round trip of recipes (frozen dataclasses of hyper-parameters)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any, ClassVar, Mapping, TypeVar

R = TypeVar("R", bound="Recipe")


class Recipe:
    """Mixin for a frozen-dataclass recipe: ``to_dict`` and a ``from_dict`` that names unknown fields."""

    kind: ClassVar[str] = "recipe"  # how error messages call it, e.g. "distill recipe"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown {cls.kind} field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


def optimizer_problems(lr: float, momentum: float, weight_decay: float) -> list[str]:
    """What is wrong with the optimizer fields every training recipe has (empty: nothing)."""
    problems = []
    if not 0 < lr <= 10:
        problems.append("lr must be in (0, 10]")
    if not 0 <= momentum < 1:
        problems.append("momentum must be in [0, 1)")
    if weight_decay < 0:
        problems.append("weight_decay must be >= 0")
    return problems
