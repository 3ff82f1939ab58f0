"""Search spaces."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import EXAMPLE_ARCH, EXAMPLE_ARCH_ID


class ArchitectureOut(BaseModel):
    id: str = Field(examples=[EXAMPLE_ARCH_ID], description="Canonical, URL-safe architecture id.")
    config: dict[str, Any] = Field(examples=[EXAMPLE_ARCH])


class SpaceSummary(BaseModel):
    name: str = Field(examples=["mbv3-tiny"])
    description: str
    input_size: int = Field(examples=[16], description="Input resolution (pixels per side).")
    num_stages: int = Field(examples=[5])
    size: int = Field(description="Number of architectures in the space.", examples=[292201338200000])
    blocks_per_stage: int = Field(examples=[780], description="Candidate blocks of one stage.")


class SpaceDetail(SpaceSummary):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "mbv3-tiny", "description": "Same structure at width x0.25 and 16x16 input.", "input_size": 16,
        "num_stages": 5, "size": 292201338200000, "blocks_per_stage": 780,
        "definition": {"name": "mbv3-tiny", "input_size": 16, "stem_channels": 8, "widths": [8, 16, 24, 32, 40]},
        "depth_choices": [1, 2, 3, 4], "expand_choices": [2, 4, 6, 8, 10],
        "reference": {"id": "d44444-eaaaa.aaaa.aaaa.aaaa.aaaa", "config": {}},
        "smallest": {"id": "d11111-e2.2.2.2.2", "config": {}},
    }]})

    definition: dict[str, Any] = Field(description="The full space; POST it back as a custom `space`.")
    depth_choices: list[int]
    expand_choices: list[int]
    reference: ArchitectureOut = Field(description="The largest architecture (the trained reference).")
    smallest: ArchitectureOut
