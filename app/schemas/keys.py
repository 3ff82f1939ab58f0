"""API keys: the caller's own keys, listed and revoked; new keys for the same owner."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import Name, RequestModel


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [{
        "id": "key_2b7d4c31a8e65f0c1e9a", "name": "laptop", "prefix": "bz_Ab3dE9fG", "created_at": "2026-01-01T12:00:00Z",
        "last_used_at": "2026-01-02T08:30:00Z", "revoked_at": None,
    }]})

    id: str
    name: str
    prefix: str = Field(description="The key's first characters, to recognise it; the key itself is never shown again.")
    created_at: datetime
    last_used_at: datetime | None = Field(description="Last request with this key (to the minute).")
    revoked_at: datetime | None = Field(description="Set once revoked: the key no longer authenticates.")


class ApiKeyCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "ci"}]})

    name: Name = Field(default="default", description="What the key is for (shown in listings).")


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The new key: shown this once, keep it (`Authorization: Bearer <key>`).")
