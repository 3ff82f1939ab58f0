"""Latency tables: measured per-block latency of a space on one device, for latency budgets."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import Seed
from app.schemas.jobs import JobOut


class TimingIn(BaseModel):
    """How each part is timed (``blockzoo.latency.Timing``); unset fields take the core's defaults."""

    model_config = ConfigDict(extra="forbid")

    warmup: int | None = Field(default=None, ge=0, le=100, description="Untimed runs per module (default 5).")
    repeats: int | None = Field(default=None, ge=1, le=100, description="Timed runs per module per round (5).")
    rounds: int | None = Field(default=None, ge=1, le=100, description="Interleaved rounds (5).")
    statistic: Literal["min", "median"] | None = Field(default=None, description="Of the timed runs (min).")
    clock: Literal["wall", "thread"] | None = Field(
        default=None, description="wall (default), or thread: CPU time of one thread (CPU workers with one "
        "torch thread only).")


class LatencyMeasureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "space": "mbv3-tiny", "in_channels": 1, "num_classes": 10, "batch_size": 1, "architectures": 20,
    }]})

    space: str | dict[str, Any] = Field(default="mbv3-tiny", description="A preset name or a custom space definition.")
    in_channels: int = Field(ge=1, le=4096, description="Image channels of the networks' input (a zoo's dataset's).")
    num_classes: int = Field(ge=1, le=1_000_000, description="Classes of the networks' classifier.")
    batch_size: int = Field(default=1, ge=1, le=4096, description="Images per forward pass.")
    architectures: int = Field(default=20, ge=0, le=1000, description="Random networks timed end to end to "
                               "calibrate the table (0: none; predictions are then plain sums, which run low).")
    coverage: float = Field(default=0.95, gt=0, lt=1, description="Share of networks that should run no slower "
                            "than predicted (0.5: the median, a point estimate).")
    seed: Seed = Field(default=0, description="Seed of the calibration networks.")
    timing: TimingIn = Field(default_factory=TimingIn)
    name: str | None = Field(default=None, max_length=200, description="Display name (default: from the request).")


class LatencyTableOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [{
        "id": "lat_4e1d2c3b4a5f6e7d8c9b", "name": "mbv3-tiny b1 cpu", "source": "upload", "state": "ready",
        "error": None, "space_name": "mbv3-tiny", "in_channels": 1, "num_classes": 10, "batch_size": 1,
        "device": "cpu", "machine": "cpu: AMD EPYC; torch 2.14.1+cu130; 1 threads", "torch_version": "2.14.1+cu130",
        "blocks": 3900, "scale": 1.31, "fastest_ms": 2.4, "largest_ms": 11.2, "content_hash": "5d1e...",
        "job_id": None, "created_at": "2026-01-01T12:00:00Z",
    }]})

    id: str
    name: str
    source: Literal["upload", "measured"]
    state: Literal["measuring", "ready", "failed"] = Field(description="measuring: its job is timing the blocks.")
    error: str | None = Field(description="Why measuring failed (state failed).")
    space_name: str
    in_channels: int
    num_classes: int
    batch_size: int
    device: str | None = Field(description="Where it was measured: cpu, cuda, cuda:0, ...")
    machine: str | None = Field(description="Device model, torch version and CPU threads it was measured with.")
    torch_version: str | None
    blocks: int | None = Field(description="Candidate blocks timed (every block of the space).")
    scale: float | None = Field(description="Calibration: predictions are the sum of the parts times this.")
    fastest_ms: float | None = Field(description="Predicted latency of the fastest architecture: the smallest "
                                     "achievable max_latency_ms.")
    largest_ms: float | None = Field(description="Predicted latency of the space's largest architecture.")
    content_hash: str | None = Field(description="SHA-256 of the stored table file.")
    job_id: str | None = Field(description="The measuring job (measured tables).")
    created_at: datetime


class LatencyTableDetail(LatencyTableOut):
    table: dict[str, Any] | None = Field(default=None, description="The table itself (the file's JSON), once "
                                         "ready: space, shapes, timing, calibration networks, every block's ms.")


class LatencyTableCreated(BaseModel):
    table: LatencyTableOut
    job: JobOut = Field(description="The measuring job; poll it, or the table, until it is ready.")
