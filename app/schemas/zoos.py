"""Zoos: creation request (dataset, space, reference and distillation recipes) and views."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas.common import ResourceId, Seed
from app.schemas.jobs import JobOut
from app.schemas.spaces import SpaceIn


class TrainRecipeIn(BaseModel):
    """The fields of ``blockzoo.training.TrainRecipe``; unset fields take the core's defaults."""

    model_config = ConfigDict(extra="forbid")

    epochs: float | None = Field(default=None, gt=0, le=1000, description="Passes over the training split.")
    batch_size: int | None = Field(default=None, ge=1, le=8192)
    lr: float | None = Field(default=None, gt=0, le=10, description="For batch_size 128; scaled linearly.")
    momentum: float | None = Field(default=None, ge=0, lt=1)
    weight_decay: float | None = Field(default=None, ge=0)
    label_smoothing: float | None = Field(default=None, ge=0, lt=1)
    warmup_epochs: float | None = Field(default=None, ge=0)
    augment: bool | None = Field(default=None, description="Random crop (pad 2).")
    flip: bool | None = Field(default=None, description="Random horizontal flip (turn off for digits/text).")
    seed: Seed | None = None
    precise_bn_batches: int | None = Field(default=None, ge=0, le=10_000, description="BN statistics are "
                                           "recomputed on this many training batches after training.")

    @model_validator(mode="before")
    @classmethod
    def _known_fields_only(cls, data: Any) -> Any:
        # Before pydantic's own "extra inputs" error, so that the message lists what is accepted.
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                raise ValueError(f"unknown recipe field(s) {unknown}; known: {sorted(cls.model_fields)}")
        return data


class ReferenceRecipeIn(TrainRecipeIn):
    """How the reference (the largest architecture) is trained; unset fields take the core's defaults."""

    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"epochs": 1, "batch_size": 64, "lr": 0.05}]})

    weights_upload: bool | None = Field(
        default=None, description="true: do not train; upload the reference weights next with "
        "PUT /v1/zoos/{id}/reference (a safetensors state dict of the space's largest architecture).",
    )


class DistillRecipeIn(BaseModel):
    """How candidate blocks are distilled (DESIGN §3); unset fields take the core's defaults (T=20)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"batches": 20, "batch_size": 64}]})

    batches: int | None = Field(default=None, ge=0, le=10_000, description="T: KD batches.")
    batch_size: int | None = Field(default=None, ge=1, le=4096)
    optimizer: Literal["sgd", "adam"] | None = None
    lr: float | None = Field(default=None, gt=0, le=10)
    momentum: float | None = Field(default=None, ge=0, lt=1)
    weight_decay: float | None = Field(default=None, ge=0)
    seed: Seed | None = Field(default=None, description="Picks the KD batches.")
    remap_order: Literal["first", "l1"] | None = None
    init: Literal["remap", "random"] | None = None
    heldout_batches: int | None = Field(default=None, ge=0, le=1000)
    chunk_size: int | None = Field(default=None, ge=1, description="Loop engine: blocks trained together (memory knob).")
    engine: Literal["stacked", "loop"] | None = Field(
        default=None, description="stacked (default): a stage's blocks packed into one computation; loop: one by one.")


class ZooCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "dataset_id": "ds_0b4f6c2e9a1d3e5f7a8b", "space": "mbv3-tiny",
        "reference": {"epochs": 1, "batch_size": 64}, "distill": {"batches": 4, "batch_size": 32},
        "build": "lazy",
    }]})

    dataset_id: ResourceId
    space: SpaceIn = Field(default="mbv3-tiny",
                                               description="A preset name or a custom space definition.")
    reference: ReferenceRecipeIn = Field(default_factory=ReferenceRecipeIn)
    distill: DistillRecipeIn = Field(default_factory=DistillRecipeIn)
    build: Literal["lazy", "eager"] = Field(
        default="lazy", description="lazy: train the reference now, distil blocks when scoring needs them; "
        "eager: distil every candidate block now.",
    )


class ZooOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [{
        "id": "zoo_5f0c1e9a2b7d4c31a8e6", "dataset_id": "ds_0b4f6c2e9a1d3e5f7a8b", "space_name": "mbv3-tiny",
        "build": "lazy", "state": "ready", "error": None, "reference_recipe": {"epochs": 1},
        "distill_recipe": {"batches": 4, "batch_size": 32}, "in_channels": 1, "num_classes": 10,
        "reference_hash": "3b1f...", "reference_metrics": {"test_accuracy": 0.91}, "blocks_stored": 17,
        "build_job_id": "job_8d2e41f0a7c3b9e15d60", "created_at": "2026-01-01T12:00:00Z",
        "updated_at": "2026-01-01T12:00:40Z",
    }]})

    id: str
    dataset_id: str
    space_name: str
    build: Literal["lazy", "eager"]
    state: Literal["needs_reference", "building", "ready", "failed"] = Field(
        description="needs_reference: waiting for PUT /v1/zoos/{id}/reference (weights_upload zoos).")
    error: str | None
    reference_recipe: dict[str, Any]
    distill_recipe: dict[str, Any]
    in_channels: int
    num_classes: int
    reference_hash: str | None = Field(description="SHA-256 of the reference weights file.")
    reference_metrics: dict[str, Any] | None = Field(
        description="What reference training measured (test_accuracy, train_accuracy, steps, seconds; "
        "a resumed build reports the training that made the reference); the weights' hash is reference_hash.")
    blocks_stored: int = Field(description="Distilled candidate blocks persisted so far.")
    build_job_id: str | None
    created_at: datetime
    updated_at: datetime


class ZooCreated(BaseModel):
    # The answer to POST /v1/zoos: a zoo still building and its queued build job.
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "zoo": {"id": "zoo_5f0c1e9a2b7d4c31a8e6", "dataset_id": "ds_0b4f6c2e9a1d3e5f7a8b", "space_name": "mbv3-tiny",
                "build": "lazy", "state": "building", "error": None, "reference_recipe": {"epochs": 1},
                "distill_recipe": {"batches": 4, "batch_size": 32}, "in_channels": 1, "num_classes": 10,
                "reference_hash": None, "reference_metrics": None, "blocks_stored": 0,
                "build_job_id": "job_8d2e41f0a7c3b9e15d60", "created_at": "2026-01-01T12:00:00Z",
                "updated_at": "2026-01-01T12:00:00Z"},
        "job": {"id": "job_8d2e41f0a7c3b9e15d60", "kind": "build_zoo", "state": "queued", "progress": 0.0,
                "message": "queued", "phase": None, "eta_s": None, "error": None,
                "zoo_id": "zoo_5f0c1e9a2b7d4c31a8e6", "result": None, "cancel_requested": False, "attempts": 0,
                "created_at": "2026-01-01T12:00:00Z", "started_at": None, "finished_at": None,
                "updated_at": "2026-01-01T12:00:00Z", "heartbeat_at": None},
    }]})

    zoo: ZooOut
    job: JobOut | None = Field(description="The build job; null while the zoo waits for uploaded reference weights.")
