"""Helpers shared by repositories: owner-scoped lookup and pagination."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")


def get_owned(session: Session, model: type[T], owner_id: str, id_: str) -> T | None:
    """The row ``id_`` if ``owner_id`` owns it; another owner's row is as absent as a missing one."""
    query = select(model).where(model.id == id_, model.owner_id == owner_id)  # type: ignore[attr-defined]
    return session.scalar(query)


def paginate(session: Session, query: Select[Any], limit: int, offset: int) -> tuple[list[Any], int]:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    items = list(session.scalars(query.limit(limit).offset(offset)))
    return items, total
