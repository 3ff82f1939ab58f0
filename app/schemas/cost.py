"""Analytic cost (MACs, parameters) without a zoo."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import EXAMPLE_ARCH, EXAMPLE_ARCH_ID, ArchitectureIn, RequestModel
from app.schemas.spaces import SpaceIn


class CostRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "space": "mbv3-tiny", "architectures": [EXAMPLE_ARCH, "d11111-e2.2.2.2.2"], "in_channels": 1, "num_classes": 10,
    }]})

    space: SpaceIn = Field(description="A preset name or a custom space definition.")
    architectures: list[ArchitectureIn] = Field(min_length=1, max_length=10_000)
    in_channels: int = Field(default=3, ge=1, le=64, description="Input channels (1 for grey images).")
    num_classes: int = Field(default=10, ge=2, le=100_000)


class CostItem(BaseModel):
    arch_id: str = Field(examples=[EXAMPLE_ARCH_ID])
    architecture: dict[str, Any] = Field(examples=[EXAMPLE_ARCH])
    macs: int = Field(description="Multiply-accumulates of one forward pass of one image.")
    params: int


class CostResponse(BaseModel):
    space: str = Field(examples=["mbv3-tiny"])
    in_channels: int
    num_classes: int
    items: list[CostItem]
