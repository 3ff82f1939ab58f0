"""Shapes shared by every resource: errors, pages, architectures."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

EXAMPLE_ARCH = {"depths": [4, 2, 3, 1, 4], "expand": [[6, 6, 4, 2], [10, 8], [4, 4, 2], [6], [8, 8, 8, 10]]}
EXAMPLE_ARCH_ID = "d42314-e6642.a8.442.6.888a"


class ErrorBody(BaseModel):
    code: str = Field(examples=["not_found"], description="Stable, machine-readable error code.")
    message: str = Field(examples=["no zoo 'zoo_5f0c1e9a2b7d4c31a8e6'; GET /v1/zoos lists yours"])
    details: Any | None = Field(default=None, description="Extra structure, e.g. the invalid fields.")


class ErrorResponse(BaseModel):
    error: ErrorBody


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="Number of items across all pages.")
    limit: int
    offset: int


class ArchitectureConfig(BaseModel):
    """One expansion-ratio list per stage (its length is the stage's depth)."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_ARCH]})

    depths: list[int] | None = Field(default=None, description="Optional: implied by the expand lists.")
    expand: list[list[int]]


ArchitectureIn = str | ArchitectureConfig
"""An architecture as a config object or its canonical id string (e.g. ``d42314-e6642.a8.442.6.888a``)."""


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route can answer."""
    text = {
        400: "Invalid input (e.g. an unreadable dataset file).",
        401: "Missing or invalid API key.",
        404: "No such resource for this API key's owner.",
        409: "The request conflicts with the resource's state.",
        413: "Upload larger than the configured limit.",
        422: "Invalid request body or architecture (the message names the stage).",
        503: "A dependency (database, job backend) is unavailable.",
    }
    return {code: {"model": ErrorResponse, "description": text[code]} for code in codes}
