"""Searches: the request that started one, and its result once its job finished."""

from __future__ import annotations

from typing import Any

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
