"""Limits on the work one request may ask for (the server's settings; 422 naming the limit).

A search's size is its population × (generations + 1) architectures (or ``max_evaluations``
when lower); a training's is its epochs. Both are checked before anything is created, so a
request past them costs nothing.
"""

from __future__ import annotations

from typing import Any

from app.errors import LimitExceeded
from infra.settings import Settings


def search_evaluations(population: int, generations: int, max_evaluations: int | None) -> int:
    """Architectures a search may score at most."""
    evaluations = population * (generations + 1)
    return min(evaluations, max_evaluations) if max_evaluations else evaluations


def check_search_size(settings: Settings, population: int, generations: int, max_evaluations: int | None) -> None:
    evaluations = search_evaluations(population, generations, max_evaluations)
    if evaluations > settings.max_search_evaluations:
        raise LimitExceeded(
            f"a search of population {population} × ({generations} generations + 1) scores up to {evaluations} "
            f"architectures; this server allows at most {settings.max_search_evaluations} per search "
            "(max_search_evaluations): lower population or generations, or set max_evaluations",
            details={"evaluations": evaluations, "max_search_evaluations": settings.max_search_evaluations})


def check_epochs(settings: Settings, recipe: dict[str, Any], field: str) -> None:
    """``recipe["epochs"]`` (if given) within ``max_train_epochs``; ``field`` names it in the message."""
    epochs = recipe.get("epochs")
    if epochs is not None and epochs > settings.max_train_epochs:
        raise LimitExceeded(
            f"{field}.epochs={epochs:g} is above this server's limit of {settings.max_train_epochs:g} epochs "
            "(max_train_epochs)", details={"field": f"{field}.epochs", "max_train_epochs": settings.max_train_epochs})
