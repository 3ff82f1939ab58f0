"""Validations: a sample of a zoo's architectures trained on its dataset, and how well every signal ranks them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import EXAMPLE_ARCH_ID, ArchitectureIn
from app.schemas.jobs import JobOut


class BandIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"target_macs": 3_000_000,
                                                                               "tolerance": 0.1}]})

    target_macs: float = Field(gt=0, description="MACs per image at the centre of the band.")
    tolerance: float = Field(gt=0, lt=1, description="Half-width of the band as a fraction: 0.1 keeps "
                             "architectures within ±10 % of target_macs.")


class ValidationRecipeIn(BaseModel):
    """Fields of the ground-truth training recipe; unset ones keep the space's default (docs/validation.md)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"epochs": 4, "batch_size": 256}]})

    epochs: float | None = Field(default=None, gt=0, le=1000, description="Epochs, fractions allowed.")
    batch_size: int | None = Field(default=None, ge=1, le=65536)
    lr: float | None = Field(default=None, gt=0, le=100, description="Learning rate for batches of 128 "
                             "(scaled linearly with batch_size).")
    momentum: float | None = Field(default=None, ge=0, lt=1)
    weight_decay: float | None = Field(default=None, ge=0, le=1)
    label_smoothing: float | None = Field(default=None, ge=0, lt=1)
    warmup_epochs: float | None = Field(default=None, ge=0, le=1000)
    augment: bool | None = Field(default=None, description="Random crops.")
    flip: bool | None = Field(default=None, description="Random horizontal flips (off for digits and text).")


class ValidationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"k": 10, "seeds": 2, "design": "uniform"},
        {"k": 10, "seeds": 2, "design": "budget_band", "band": {"target_macs": 3_000_000, "tolerance": 0.1}},
        {"seeds": 1, "design": "explicit", "architectures": [EXAMPLE_ARCH_ID, "d11111-e2.2.2.2.2",
                                                             "d22222-e44.44.44.44.44"]},
    ]})

    k: int | None = Field(default=None, ge=3, le=100, description="Architectures to train (default 10); left "
                          "out with design explicit.")
    seeds: int = Field(default=2, ge=1, le=5, description="Training seeds per architecture (0 … seeds−1). Two or "
                       "more show how reproducible training itself is: the seed-to-seed ceiling.")
    design: Literal["uniform", "budget_band", "explicit"] = Field(
        default="uniform", description="uniform: drawn by the paper's rule; budget_band: drawn the same way, kept "
        "when their MACs lie in `band` (where MACs cannot rank them); explicit: `architectures`.")
    band: BandIn | None = Field(default=None, description="Design budget_band only.")
    architectures: list[ArchitectureIn] | None = Field(default=None, max_length=100,
                                                       description="Design explicit only: ids or configs.")
    arch_seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seeds the draws of uniform and budget_band.")
    recipe: ValidationRecipeIn = Field(default_factory=ValidationRecipeIn)


class PlannedArchitecture(BaseModel):
    arch_id: str = Field(examples=[EXAMPLE_ARCH_ID])
    macs: int
    params: int


class TrainingOut(BaseModel):
    """One (architecture, seed) of the validation."""

    arch_id: str = Field(examples=[EXAMPLE_ARCH_ID])
    seed: int
    state: Literal["pending", "training", "done"]
    test_accuracy: float | None = None
    test_nll: float | None = None
    seconds: float | None = Field(default=None, description="Wall time of its training (resumed: the last run).")
    resumed_from_step: int | None = Field(default=None, description="Above 0 when a run took over a checkpoint.")
    trained_count: int = Field(description="Runs that trained it to the end for this validation: 1, or 0 when an "
                               "earlier validation of the zoo had trained it already.")
    job_id: str | None = Field(description="Its own validation_train job.")


class ValidationOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "val_2b4d6f8a0c1e3a5c7e9b", "zoo_id": "zoo_5f0c1e9a2b7d4c31a8e6", "state": "running",
        "progress": 0.25, "message": "training: 5/20 trainings done, about 42 min left", "job": None,
        "request": {"k": 10, "seeds": 2, "design": "uniform"}, "design": {"name": "uniform", "arch_seed": 0},
        "architectures": [{"arch_id": EXAMPLE_ARCH_ID, "macs": 1834512, "params": 60250}], "seeds": [0, 1],
        "recipe": {"epochs": 6, "batch_size": 128}, "trainings_done": 5, "trainings_total": 20,
        "trainings": [], "verdict": None, "report": None, "plot_url": None, "created_at": "2026-01-01T12:00:00Z",
    }]})

    id: str
    zoo_id: str
    state: str = Field(description="queued | running | succeeded | failed | cancelled.")
    progress: float = Field(ge=0, le=1, description="Trainings done / trainings in all.")
    message: str = Field(description="What it is doing, with an ETA while it trains.")
    job: JobOut | None = Field(description="The validate job: measures the signals and writes the report once "
                               "every training is done.")
    request: dict[str, Any]
    design: dict[str, Any] = Field(description="How the architectures were chosen.")
    architectures: list[PlannedArchitecture]
    seeds: list[int]
    recipe: dict[str, Any] = Field(description="The ground-truth recipe, every field.")
    trainings_done: int
    trainings_total: int
    trainings: list[TrainingOut] | None = Field(default=None, description="Per (architecture, seed); left out "
                                                "of lists.")
    verdict: str | None = Field(default=None, description="What the report's numbers allow saying, in one "
                                "paragraph; set once succeeded.")
    report: dict[str, Any] | None = Field(default=None, description="Set once succeeded (left out of lists): "
                                          "docs/validation.md describes every field.")
    plot_url: str | None = Field(default=None, description="The report as a picture; set once succeeded.")
    created_at: datetime
