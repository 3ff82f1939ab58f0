"""Background jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from blockzoo.progress import phase_of, remaining_seconds
from pydantic import BaseModel, ConfigDict, Field, computed_field

from infra.db.base import utcnow

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [{
        "id": "job_8d2e41f0a7c3b9e15d60", "kind": "build_zoo", "state": "running", "progress": 0.42,
        "message": "training: step 12/28 loss 1.734", "phase": "training", "eta_s": 41.5, "error": None,
        "zoo_id": "zoo_5f0c1e9a2b7d4c31a8e6",
        "result": None, "cancel_requested": False, "attempts": 1, "created_at": "2026-01-01T12:00:00Z",
        "started_at": "2026-01-01T12:00:01Z", "finished_at": None, "updated_at": "2026-01-01T12:03:20Z",
        "heartbeat_at": "2026-01-01T12:03:22Z",
    }]})

    id: str
    kind: str = Field(description="build_zoo | score | export | search | finetune | ...")
    state: JobState
    progress: float = Field(ge=0, le=1)
    message: str = Field(description="What the job is doing now, for people.")
    error: str | None = Field(description="Why it failed (state failed).")
    zoo_id: str | None
    result: dict[str, Any] | None = Field(description="Kind-specific result once succeeded.")
    cancel_requested: bool
    attempts: int = Field(description="Times a worker started it (above 1 after a redelivery).")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime = Field(description="Last change of state, progress or message.")
    heartbeat_at: datetime | None = Field(
        description="Last sign of life of the worker running it (every few seconds while running); a running "
        "job whose heartbeat is older than the server's heartbeat_timeout_s (60 s by default) has lost its "
        "worker and is re-queued (docs/reliability.md).")

    # Computed when the view is made, so that they need no column and are never stale.
    @computed_field(description="What a running job does now: the phase its message names first "
                    "(training, precise BN, evaluating, preparing, distilling, scoring, zero-cost, assembling, "
                    "searching, ...); null when not running.")
    @property
    def phase(self) -> str | None:
        return phase_of(self.message) if self.state == "running" else None

    @computed_field(description="Seconds left for a running job, estimated from the time since it started "
                    "and its progress; null when not running or too early to tell (under 1% done).")
    @property
    def eta_s(self) -> float | None:
        if self.state != "running" or self.started_at is None:
            return None
        eta = remaining_seconds((utcnow() - self.started_at).total_seconds(), self.progress)
        return None if eta is None else round(eta, 1)


class JobAccepted(BaseModel):
    """Not done within `wait`: poll `GET /v1/jobs/{id}` (also in the Location header)."""

    job: JobOut
