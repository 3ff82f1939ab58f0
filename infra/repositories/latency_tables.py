"""Latency tables: rows that summarise a table file, and the measuring job's outcome."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from infra.db.models import LatencyTable


def add(session: Session, table: LatencyTable) -> LatencyTable:
    session.add(table)
    return table


def get(session: Session, table_id: str) -> LatencyTable | None:
    return session.get(LatencyTable, table_id, populate_existing=True)


def list_for_owner(owner_id: str) -> Select[tuple[LatencyTable]]:
    return (select(LatencyTable).where(LatencyTable.owner_id == owner_id)
            .order_by(LatencyTable.created_at.desc(), LatencyTable.id))


def set_measured(session: Session, table_id: str, summary: dict[str, Any], path: str, content_hash: str) -> None:
    """The measuring job wrote the file: the row becomes ``ready`` with the file's summary."""
    table = get(session, table_id)
    if table is None:
        raise LookupError(f"latency table {table_id!r} no longer exists")
    for name, value in summary.items():
        setattr(table, name, value)
    table.path, table.content_hash, table.state, table.error = path, content_hash, "ready", None


def mark_failed(session: Session, table_id: str, error: str) -> None:
    table = get(session, table_id)
    if table is not None and table.state == "measuring":
        table.state, table.error = "failed", error


def delete(session: Session, table: LatencyTable) -> None:
    session.delete(table)
