"""How a validation trains its architectures: the ground-truth recipe and its defaults per space.

Pure (no torch), so the API process can check a requested recipe before any job starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from ..training import TrainRecipe


@dataclass(frozen=True)
class GroundTruthRecipe:
    """How a ground-truth network is trained: ``TrainRecipe`` minus the seed (the seed is per run)."""

    epochs: float = 6
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-5
    label_smoothing: float = 0.1
    warmup_epochs: float = 0.5
    augment: bool = True
    flip: bool = True

    def train_recipe(self, seed: int) -> "TrainRecipe":
        from ..training import TrainRecipe

        return TrainRecipe(seed=seed, **asdict(self))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GroundTruthRecipe":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ground-truth recipe field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


# Per space (``<preset>@<input size>``), the recipe whose results are committed evidence
# (docs/proxy-quality-protocol.md); other spaces get the dataclass defaults.
DEFAULT_RECIPES: dict[str, GroundTruthRecipe] = {
    "mbv3-tiny@28": GroundTruthRecipe(epochs=4, batch_size=256, warmup_epochs=0.3),
}


def default_recipe(space_name: str) -> GroundTruthRecipe:
    """The ground-truth recipe a validation of ``space_name`` uses unless told otherwise."""
    return DEFAULT_RECIPES.get(space_name, GroundTruthRecipe())
