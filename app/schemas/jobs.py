"""Background jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [{
        "id": "job_8d2e41f0a7c3b9e15d60", "kind": "build_zoo", "state": "running", "progress": 0.42,
        "message": "reference: epoch 1/2, step 12/28", "error": None, "zoo_id": "zoo_5f0c1e9a2b7d4c31a8e6",
        "result": None, "cancel_requested": False, "attempts": 1, "created_at": "2026-01-01T12:00:00Z",
        "started_at": "2026-01-01T12:00:01Z", "finished_at": None,
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


class JobAccepted(BaseModel):
    """Not done within `wait`: poll `GET /v1/jobs/{id}` (also in the Location header)."""

    job: JobOut
