"""Fine-tunes: train one architecture of a zoo from its zoo, remap or scratch initialisation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import EXAMPLE_ARCH, EXAMPLE_ARCH_ID, ArchitectureIn
from app.schemas.jobs import JobOut
from app.schemas.zoos import TrainRecipeIn

FinetuneInit = Literal["zoo", "remap", "scratch"]


class FinetuneRecipeIn(TrainRecipeIn):
    """How the architecture is trained (``blockzoo.training.TrainRecipe``); unset fields take the core's defaults."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"epochs": 2, "batch_size": 64, "lr": 0.05, "warmup_epochs": 0.2}]})


class FinetuneCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "architecture": EXAMPLE_ARCH_ID, "init": "zoo", "recipe": {"epochs": 2, "batch_size": 64, "lr": 0.05},
    }]})

    architecture: ArchitectureIn = Field(description="A config object or the canonical id, e.g. a search's pick.")
    init: FinetuneInit = Field(
        default="zoo", description="zoo: reference prefix and head + the zoo's distilled blocks (the paper's KD "
        "init; missing blocks are distilled first); remap: parameter-remapped blocks, no KD; scratch: random.")
    recipe: FinetuneRecipeIn = Field(default_factory=FinetuneRecipeIn)


class FinetuneResultOut(BaseModel):
    arch_id: str = Field(examples=[EXAMPLE_ARCH_ID])
    architecture: dict[str, Any] = Field(examples=[EXAMPLE_ARCH])
    init: FinetuneInit
    initial_test_accuracy: float | None = Field(description="Test accuracy of the initialised network, before "
                                                "training (after BN recalibration unless scratch).")
    test_accuracy: float | None = Field(description="Test accuracy after fine-tuning.")
    steps: int = Field(description="Optimizer steps taken.")
    seconds: float = Field(description="Wall time of the training loop.")
    recipe: dict[str, Any] = Field(description="The full recipe used (defaults filled in).")
    sha256: str = Field(description="SHA-256 of the weights file.")
    bytes: int = Field(description="Size of the weights file.")


class FinetuneOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "ft_3c9e0d1f2a4b5c6d7e8f", "zoo_id": "zoo_5f0c1e9a2b7d4c31a8e6", "arch_id": EXAMPLE_ARCH_ID,
        "architecture": EXAMPLE_ARCH, "init": "zoo", "recipe": {"epochs": 2, "batch_size": 64},
        "macs": 1834512, "params": 60250, "state": "succeeded", "progress": 1.0, "job": None,
        "result": {"arch_id": EXAMPLE_ARCH_ID, "architecture": EXAMPLE_ARCH, "init": "zoo",
                   "initial_test_accuracy": 0.71, "test_accuracy": 0.93, "steps": 48, "seconds": 21.4,
                   "recipe": {"epochs": 2, "batch_size": 64, "lr": 0.1}, "sha256": "5d1c...", "bytes": 251904},
        "created_at": "2026-01-01T12:00:00Z",
    }]})

    id: str
    zoo_id: str
    arch_id: str = Field(description="Canonical id of the fine-tuned architecture.")
    architecture: dict[str, Any]
    init: FinetuneInit
    recipe: dict[str, Any] = Field(description="The recipe fields as requested.")
    macs: int
    params: int
    state: str = Field(description="The state of its job: queued | running | succeeded | failed | cancelled.")
    progress: float = Field(ge=0, le=1, description="Its job's progress.")
    job: JobOut | None
    result: FinetuneResultOut | None = Field(default=None, description="Set once succeeded; the weights are "
                                             "then at GET /v1/finetunes/{id}/weights.")
    created_at: datetime
