"""Datasets."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import Name, RequestModel, Seed


class BuiltinDatasetRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "digits"}, {"name": "fashion-mnist", "options": {"train_limit": 10000}},
        {"name": "synthetic", "options": {"num_images": 600}, "seed": 0},
    ]})

    name: Name = Field(description="digits | fashion-mnist | synthetic (GET /v1/datasets/builtin lists them).")
    options: dict[str, Any] = Field(default_factory=dict, description="Dataset-specific options.")
    seed: Seed = Field(default=0, description="Seeds the train/test split and synthetic data.")


class BuiltinDatasetOut(BaseModel):
    name: str = Field(examples=["fashion-mnist"])
    description: str
    options: dict[str, Any] = Field(description="Accepted options and their defaults.")


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [{
        "id": "ds_0b4f6c2e9a1d3e5f7a8b", "name": "digits", "source": "builtin", "format": "builtin",
        "content_hash": "9f2c0e1d4b6a8c7e5f3d2b1a0c9e8d7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d",
        "num_train": 1497, "num_test": 300, "num_classes": 10, "class_names": [str(i) for i in range(10)],
        "image_shape": [8, 8, 1], "upload_bytes": None, "created_at": "2026-01-01T12:00:00Z",
    }]})

    id: str
    name: str
    source: Literal["builtin", "upload"]
    format: str = Field(description="builtin | npz | idx | imagefolder | cifar-10 | cifar-100")
    content_hash: str = Field(description="SHA-256 of the normalised store: same content, same hash.")
    num_train: int
    num_test: int
    num_classes: int
    class_names: list[str]
    image_shape: list[int] = Field(description="[height, width, channels] as stored.")
    upload_bytes: int | None = Field(description="Size of the uploaded file (uploads only).")
    created_at: datetime
