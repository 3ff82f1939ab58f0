"""Signed download links: what to sign, and the link."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import RequestModel
from app.services.links import DEFAULT_LIFETIME_S, MAX_LIFETIME_S


class LinkCreate(RequestModel):
    model_config = RequestModel.model_config | {"json_schema_extra": {"examples": [
        {"path": "/v1/searches/srch_1a2b3c4d5e6f7a8b9c0d/plot.png", "expires_in": 3600},
        {"path": "/v1/zoos/zoo_5f0c1e9a2b7d4c31a8e6/architectures/d42314-e6642.a8.442.6.888a/weights?format=onnx"},
    ]}}

    path: str = Field(max_length=2000, description="A download to open without the API key: "
                      "/v1/searches/{id}/plot.png, /v1/zoos/{id}/architectures/{arch}/weights[?format=...], "
                      "/v1/finetunes/{id}/weights.")
    expires_in: int = Field(default=DEFAULT_LIFETIME_S, ge=1, le=MAX_LIFETIME_S, description="Seconds the link "
                            "works (at most 7 days).")


class LinkOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "url": "http://127.0.0.1:8000/v1/searches/srch_1a2b3c4d5e6f7a8b9c0d/plot.png?owner=own_7e1f0a2b3c4d5e6f7a8b"
               "&exp=1767225600&sig=5f1c0e...",
        "path": "/v1/searches/srch_1a2b3c4d5e6f7a8b9c0d/plot.png?owner=own_7e1f0a2b3c4d5e6f7a8b&exp=1767225600"
                "&sig=5f1c0e...",
        "expires_at": "2026-01-01T00:00:00Z"}]})

    url: str = Field(description="The absolute link; it opens in a browser (no Authorization header).")
    path: str = Field(description="The same, relative to the server.")
    expires_at: datetime
