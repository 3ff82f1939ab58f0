"""Scores: proxy accuracy, cost and optional baseline metrics per architecture."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import EXAMPLE_ARCH, EXAMPLE_ARCH_ID, ArchitectureIn

# The extra metrics a request may ask for: infra.scores' ZOO_METRICS and BASELINE_METRICS
# (a test checks they agree); proxy_accuracy, macs and params are always returned.
Metric = Literal["kd_loss", "heldout_accuracy", "gradnorm", "snip", "fisher", "synflow", "naswot", "l2norm"]


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "architectures": [EXAMPLE_ARCH, "d11111-e2.2.2.2.2"], "metrics": ["kd_loss", "synflow"], "wait": 30,
    }]})

    architectures: list[ArchitectureIn] = Field(min_length=1, max_length=1000)
    metrics: list[Metric] = Field(default_factory=list, description="Extra metrics; proxy_accuracy, macs and "
                                  "params are always returned.")
    wait: float = Field(default=30.0, ge=0, le=3600, allow_inf_nan=False, description="Seconds to wait for the result before answering 202 "
                        "with a job to poll (capped by the server's max_wait_s).")
    latency_table_id: str | None = Field(default=None, description="A latency table (GET /v1/latency-tables) of "
                                         "the zoo's space and shapes: each item then has its predicted latency_ms.")


class ScoreItem(BaseModel):
    arch_id: str = Field(examples=[EXAMPLE_ARCH_ID])
    architecture: dict[str, Any] = Field(examples=[EXAMPLE_ARCH])
    proxy_accuracy: float | None = Field(description="Accuracy of the assembled candidate on the T KD batches.")
    macs: int
    params: int
    latency_ms: float | None = Field(default=None, description="Predicted latency on the latency table's device "
                                     "(with latency_table_id).")
    metrics: dict[str, float | None] = Field(default_factory=dict, description="The requested extra metrics "
                                             "(null: not finite).")


class ScoreResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "zoo_id": "zoo_5f0c1e9a2b7d4c31a8e6", "job_id": "job_8d2e41f0a7c3b9e15d60",
        "items": [{"arch_id": EXAMPLE_ARCH_ID, "architecture": EXAMPLE_ARCH, "proxy_accuracy": 0.8125,
                   "macs": 1834512, "params": 60250, "metrics": {"kd_loss": 0.0213}}],
    }]})

    zoo_id: str
    job_id: str | None = Field(description="The job that computed missing scores (null: all were cached).")
    latency_table_id: str | None = Field(default=None, description="The latency table latency_ms comes from.")
    items: list[ScoreItem]
