"""The API's request schemas mirror the core's recipes and metrics, so nothing valid is refused."""

from __future__ import annotations

import dataclasses

from app.schemas.scores import Metric
from app.schemas.searches import SearchCreate
from app.schemas.zoos import DistillRecipeIn, ReferenceRecipeIn
from infra.scores import BASELINE_METRICS, ZOO_METRICS


def test_recipe_fields_match_the_core() -> None:
    from blockzoo.distill import DistillRecipe
    from blockzoo.training import TrainRecipe

    assert set(DistillRecipeIn.model_fields) == {f.name for f in dataclasses.fields(DistillRecipe)}
    assert set(ReferenceRecipeIn.model_fields) - {"weights_upload"} == {f.name for f in dataclasses.fields(TrainRecipe)}


def test_metrics_match_the_core() -> None:
    from typing import get_args

    from blockzoo.proxy import ProxyScore
    from blockzoo.zerocost import METRICS

    assert set(BASELINE_METRICS) == set(METRICS) - {"flops", "params"}  # macs/params are always returned
    assert set(ZOO_METRICS) <= {f.name for f in dataclasses.fields(ProxyScore)}
    assert set(get_args(Metric)) == set(BASELINE_METRICS) | set(ZOO_METRICS)


def test_search_options_match_the_core() -> None:
    from blockzoo import search

    assert set(get_args_of(SearchCreate, "strategy")) == set(search.STRATEGIES)
    assert set(get_args_of(SearchCreate, "metric")) == set(search.METRICS)
    options = {f.name for f in dataclasses.fields(search.SearchOptions)}
    assert {"population", "generations", "max_evaluations", "top_k"} <= options


def get_args_of(model: type, field: str) -> tuple[str, ...]:
    from typing import get_args

    return get_args(model.model_fields[field].annotation)
