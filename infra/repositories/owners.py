"""Owners and their API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from infra.db.models import ApiKey, Owner


def add_owner(session: Session, owner: Owner) -> Owner:
    session.add(owner)
    return owner


def get_owner(session: Session, owner_id: str) -> Owner | None:
    return session.get(Owner, owner_id)


def add_api_key(session: Session, key: ApiKey) -> ApiKey:
    session.add(key)
    return key


def api_key_by_digest(session: Session, digest: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.digest == digest, ApiKey.revoked_at.is_(None)))


def any_api_key(session: Session) -> bool:
    return session.scalar(select(ApiKey.id).limit(1)) is not None


def record_key_use(key: ApiKey, when: datetime) -> None:
    key.last_used_at = when
