"""Search spaces."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag

from app.schemas.common import EXAMPLE_ARCH, EXAMPLE_ARCH_ID, RequestModel, no_control_characters

# Bounds of a custom space given to the API: a space's size drives the work of every request on
# it (a cost request, a zoo build), so it is bounded here; the core itself accepts larger ones.
MAX_STAGES = 12
SpaceName = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(no_control_characters)]
_Channels = Annotated[int, Field(ge=1, le=4096)]


class SpaceDefinition(RequestModel):
    """A custom search space: the fields of `GET /v1/spaces/{name}`'s `definition` (unset ones take
    the preset defaults: depths 1-4, expansion ratios 2-10, kernel 3, head 960, feature mix 1280)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "my-space", "input_size": 16, "stem_channels": 8, "widths": [8, 16, 24],
        "strides": [1, 2, 2], "activations": ["relu", "hswish", "hswish"], "use_se": [False, True, True],
        "depth_choices": [1, 2], "expand_choices": [3, 6], "head_channels": 128, "feature_channels": None,
    }]})

    name: SpaceName
    input_size: int = Field(ge=4, le=1024, description="Input resolution (pixels per side).")
    stem_channels: _Channels
    widths: list[_Channels] = Field(min_length=1, max_length=MAX_STAGES, description="Output channels per stage.")
    # Values the core checks itself (invalid_space, naming the field): strides 1 or 2, relu | hswish.
    strides: list[int] = Field(min_length=1, max_length=MAX_STAGES)
    activations: list[Annotated[str, StringConstraints(max_length=16)]] = Field(min_length=1, max_length=MAX_STAGES)
    use_se: list[bool] = Field(min_length=1, max_length=MAX_STAGES)
    depth_choices: list[Annotated[int, Field(ge=1, le=8)]] = Field(default=None, min_length=1, max_length=8)
    expand_choices: list[Annotated[int, Field(ge=1, le=16)]] = Field(default=None, min_length=1, max_length=16)
    kernel_size: Literal[3] = 3
    head_channels: int = Field(default=None, ge=1, le=8192)
    feature_channels: int | None = Field(default=None, ge=1, le=8192, description="null: no feature mix layer.")
    dropout: float = Field(default=None, ge=0, lt=1)
    description: str = Field(default=None, max_length=1000)

    def to_core(self) -> dict[str, Any]:
        """The fields given (the core's defaults fill the rest), as ``SearchSpace.from_dict`` reads them."""
        return self.model_dump(exclude_unset=True)


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


SpaceIn = Annotated[
    Annotated[SpaceName, Tag("preset")] | Annotated[SpaceDefinition, Tag("custom")],
    Discriminator(lambda value: "preset" if isinstance(value, str) else "custom"),
]
"""A preset's name or a custom space definition (errors name the field of the one given)."""
