"""Searches: the best architectures of a zoo's space under a budget."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from blockzoo.signals import SIGNAL_NAMES

from app.schemas.common import EXAMPLE_ARCH, EXAMPLE_ARCH_ID, Seed
from app.schemas.jobs import JobOut


SearchMetric = Literal[SIGNAL_NAMES]  # blockzoo.signals: every signal, with its direction


class BudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"max_macs": 3_000_000}]})

    max_macs: int | None = Field(default=None, gt=0, description="Multiply-accumulates per image.")
    max_params: int | None = Field(default=None, gt=0)
    max_latency_ms: float | None = Field(default=None, gt=0, allow_inf_nan=False, description="Milliseconds per "
                                         "forward pass on the latency table's device, as the table predicts; "
                                         "needs latency_table_id.")


class SearchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "budget": {"max_macs": 3_000_000}, "top_k": 5, "strategy": "evolution", "seed": 0,
        "population": 20, "generations": 5,
    }]})

    budget: BudgetIn = Field(default_factory=BudgetIn)
    top_k: int = Field(default=5, ge=1, le=100, description="How many picks to return, best first.")
    strategy: Literal["evolution", "random"] = "evolution"
    metric: SearchMetric = Field(  # type: ignore[valid-type]
        default="proxy_accuracy", description="The signal to rank by: the proxy's (proxy_accuracy, heldout_accuracy, "
        "kd_loss), a zero-cost baseline, macs or params; kd_loss is minimised, the others maximised (a validation "
        "of the zoo shows which ranks its data best).")
    seed: Seed = 0
    population: int = Field(default=20, ge=2, le=1000)
    generations: int = Field(default=5, ge=0, le=1000)
    max_evaluations: int | None = Field(default=None, ge=1, description="Cap on architectures scored.")
    latency_table_id: str | None = Field(default=None, max_length=64, description="A latency table of the zoo's "
                                         "space and shapes (GET /v1/latency-tables): needed by max_latency_ms; "
                                         "with it every pick and candidate has its predicted latency_ms.")


class PickOut(BaseModel):
    arch_id: str = Field(examples=[EXAMPLE_ARCH_ID])
    architecture: dict[str, Any] = Field(examples=[EXAMPLE_ARCH])
    score: float | None = Field(description="The search metric's value (proxy_accuracy by default).")
    macs: int
    params: int
    latency_ms: float | None = None


class CandidateOut(BaseModel):
    """One evaluated architecture of a search (its config is in the picks and the front)."""

    arch_id: str = Field(examples=[EXAMPLE_ARCH_ID])
    score: float | None = Field(description="The search metric; null: not finite.")
    macs: int
    params: int
    latency_ms: float | None = None


class SearchOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "srch_1a2b3c4d5e6f7a8b9c0d", "zoo_id": "zoo_5f0c1e9a2b7d4c31a8e6", "state": "succeeded",
        "request": {"budget": {"max_macs": 3000000}, "top_k": 1, "strategy": "evolution", "seed": 0},
        "job": None, "evaluated": 95, "exhausted": False,
        "picks": [{"arch_id": EXAMPLE_ARCH_ID, "architecture": EXAMPLE_ARCH, "score": 0.83, "macs": 2950000,
                   "params": 310000, "latency_ms": None}],
        "pareto": [], "created_at": "2026-01-01T12:00:00Z",
    }]})

    id: str
    zoo_id: str
    state: str = Field(description="The state of its job: queued | running | succeeded | failed | cancelled.")
    request: dict[str, Any]
    job: JobOut | None
    evaluated: int | None = Field(default=None, description="Architectures scored (each once).")
    exhausted: bool | None = Field(default=None, description="Ended early: no new feasible architecture left.")
    picks: list[PickOut] | None = Field(default=None, description="Best first; set once succeeded.")
    pareto: list[PickOut] | None = Field(default=None, description="Non-dominated (score up, pareto_cost down), "
                                         "by that cost.")
    pareto_cost: Literal["macs", "latency_ms"] = Field(default="macs", description="The front's cost: latency_ms "
                                                       "under a latency budget, else macs.")
    candidates: list[CandidateOut] | None = Field(default=None, description="Every evaluated architecture, in "
                                                  "scoring order; set once succeeded (the dashboard plots them).")
    created_at: datetime
