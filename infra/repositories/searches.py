"""Searches: the request that started one, and its result once its job finished."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from infra.db.models import Search


def add(session: Session, search: Search) -> Search:
    session.add(search)
    return search


def get(session: Session, search_id: str) -> Search | None:
    return session.get(Search, search_id, populate_existing=True)


def set_result(session: Session, search_id: str, result: dict[str, Any]) -> None:
    search = get(session, search_id)
    if search is None:
        raise LookupError(f"search {search_id!r} no longer exists")
    search.result = result


def list_for_owner(owner_id: str, zoo_id: str | None = None) -> Select[tuple[Search]]:
    query = select(Search).where(Search.owner_id == owner_id).order_by(Search.created_at.desc(), Search.id)
    if zoo_id:
        query = query.where(Search.zoo_id == zoo_id)
    return query


def delete(session: Session, search: Search) -> None:
    session.delete(search)
