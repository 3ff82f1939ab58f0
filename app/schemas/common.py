"""Shapes shared by every resource: errors, pages, architectures."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

T = TypeVar("T")

# Bounds of request values: past them a request is a 422, never a database or numpy overflow.
MAX_OFFSET = 1_000_000_000
MAX_SEED = 2**32 - 1
MAX_ID_LENGTH = 64      # resource ids are ``<kind>_<20 hex digits>``
MAX_NAME_LENGTH = 200   # names are stored in 200-character columns


def no_control_characters(value: str) -> str:
    # NUL cannot be stored by PostgreSQL, and no name or id needs a control character.
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain control characters (NUL, newline, tab, ...)")
    return value


Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH),
                 AfterValidator(no_control_characters)]
"""A display name: 1 to 200 printable characters."""

ResourceId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH),
                       AfterValidator(no_control_characters)]
"""A resource id in a request body (``ds_...``, ``zoo_...``)."""

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]

PageLimit = Annotated[int, Query(ge=1, le=500, description="Items per page.")]
PageOffset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")]

EXAMPLE_ARCH = {"depths": [4, 2, 3, 1, 4], "expand": [[6, 6, 4, 2], [10, 8], [4, 4, 2], [6], [8, 8, 8, 10]]}
EXAMPLE_ARCH_ID = "d42314-e6642.a8.442.6.888a"


class RequestModel(BaseModel):
    """A request body: an unknown field is a 422 naming it, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


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


class ArchitectureConfig(RequestModel):
    """One expansion-ratio list per stage (its length is the stage's depth)."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_ARCH]})

    depths: list[int] | None = Field(default=None, max_length=64,
                                     description="Optional: implied by the expand lists.")
    expand: list[Annotated[list[int], Field(max_length=64)]] = Field(max_length=64)


ArchitectureIn = Annotated[str, StringConstraints(max_length=512)] | ArchitectureConfig
"""An architecture as a config object or its canonical id string (e.g. ``d42314-e6642.a8.442.6.888a``)."""


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route can answer."""
    text = {
        400: "Invalid input (e.g. an unreadable dataset file).",
        401: "Missing or invalid API key.",
        404: "No such resource for this API key's owner.",
        409: "The request conflicts with the resource's state.",
        413: "Upload larger than the configured limit.",
        422: "Invalid request: a body field, a query parameter or an architecture (the message names it).",
        429: "Too many requests or jobs for this API key or owner (the message says which limit; Retry-After).",
        503: "A dependency (database, job backend) is unavailable.",
    }
    return {code: {"model": ErrorResponse, "description": text[code]} for code in codes}
