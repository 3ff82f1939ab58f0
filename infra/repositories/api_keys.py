"""API keys of an owner: list, find, revoke (creation and lookup by digest: ``owners``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from infra.db.models import ApiKey


def for_owner(session: Session, owner_id: str) -> list[ApiKey]:
    """The owner's keys, newest first, revoked ones included."""
    query = select(ApiKey).where(ApiKey.owner_id == owner_id).order_by(ApiKey.created_at.desc(), ApiKey.id)
    return list(session.scalars(query))


def get_for_owner(session: Session, owner_id: str, key_id: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.owner_id == owner_id))


def all_keys(session: Session) -> list[ApiKey]:
    """Every key of every owner, oldest first (for the operator's CLI)."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


def matching(session: Session, id_or_prefix: str) -> list[ApiKey]:
    """Keys whose id is ``id_or_prefix`` or whose readable prefix starts with it (operator's CLI)."""
    escaped = id_or_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    query = select(ApiKey).where(or_(ApiKey.id == id_or_prefix, ApiKey.prefix.like(escaped + "%", escape="\\")))
    return list(session.scalars(query))


def revoke(key: ApiKey, when: datetime) -> None:
    """From now on the key authenticates nothing (the first revocation's time is kept)."""
    if key.revoked_at is None:
        key.revoked_at = when
