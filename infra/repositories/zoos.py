"""Zoos, their distilled blocks and the cached scores of their architectures.

A zoo's state moves only through the functions here: ``building`` (or ``needs_reference``
until uploaded weights arrive) -> ``ready`` when its build succeeds, ``failed`` when the build
fails or is cancelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from blockzoo.space import SearchSpace
from sqlalchemy.orm import Session

from infra.db.base import utcnow
from infra.db.models import Block, Job, ScoreResult, Zoo


def add(session: Session, zoo: Zoo) -> Zoo:
    session.add(zoo)
    return zoo


def get(session: Session, zoo_id: str) -> Zoo | None:
    return session.get(Zoo, zoo_id, populate_existing=True)


def list_for_owner(owner_id: str) -> Select[tuple[Zoo]]:
    return select(Zoo).where(Zoo.owner_id == owner_id).order_by(Zoo.created_at.desc(), Zoo.id)


def space_of(zoo: Zoo) -> SearchSpace:
    """The zoo's search space, from its stored definition (custom spaces survive preset changes)."""
    return SearchSpace.from_dict(zoo.space)


def move_state(session: Session, zoo_id: str, from_state: str, to_state: str) -> bool:
    """A conditional transition: of two concurrent callers exactly one moves the zoo."""
    result = session.execute(
        update(Zoo).where(Zoo.id == zoo_id, Zoo.state == from_state).values(state=to_state, updated_at=utcnow())
    )
    return result.rowcount == 1


def _set(session: Session, zoo_id: str, **values: Any) -> None:
    result = session.execute(update(Zoo).where(Zoo.id == zoo_id).values(updated_at=utcnow(), **values))
    if result.rowcount != 1:
        raise LookupError(f"zoo {zoo_id!r} no longer exists")


def set_reference(session: Session, zoo_id: str, reference_hash: str, metrics: dict[str, Any]) -> None:
    """The reference is trained (or taken from an upload): its content hash and training metrics."""
    _set(session, zoo_id, reference_hash=reference_hash, reference_metrics=metrics)


def mark_ready(session: Session, zoo_id: str, reference_hash: str) -> None:
    _set(session, zoo_id, state="ready", error=None, reference_hash=reference_hash)


def mark_build_failed(session: Session, zoo_id: str, error: str) -> bool:
    """A build that failed or was cancelled leaves its zoo failed, with the reason (a zoo still building only)."""
    result = session.execute(
        update(Zoo).where(Zoo.id == zoo_id, Zoo.state == "building")
        .values(state="failed", error=error[:2000], updated_at=utcnow())
    )
    return result.rowcount == 1


def restart_build(session: Session, zoo_id: str) -> bool:
    """failed -> building, the error cleared: of two concurrent resumes exactly one moves the zoo."""
    result = session.execute(
        update(Zoo).where(Zoo.id == zoo_id, Zoo.state == "failed").values(state="building", error=None,
                                                                          updated_at=utcnow())
    )
    return result.rowcount == 1


def block_count(session: Session, zoo_id: str) -> int:
    return session.scalar(select(func.count()).select_from(Block).where(Block.zoo_id == zoo_id)) or 0


def build_job_id(session: Session, zoo_id: str) -> str | None:
    return session.scalar(
        select(Job.id).where(Job.zoo_id == zoo_id, Job.kind == "build_zoo").order_by(Job.created_at.desc()).limit(1)
    )


def active_job(session: Session, zoo_id: str, kind: str, payload_key: str, value: Any,
               defaults: dict[str, Any] | None = None, **more: Any) -> Job | None:
    """An unfinished job of ``kind`` on the zoo whose payload has ``payload_key == value`` and the
    ``more`` items (a payload without one of those keys has its value in ``defaults``): dedupe."""
    wanted = {payload_key: value, **more}
    defaults = defaults or {}
    jobs = session.scalars(select(Job).where(Job.zoo_id == zoo_id, Job.kind == kind,
                                             Job.state.in_(("queued", "running"))))
    return next((j for j in jobs if all((j.payload or {}).get(k, defaults.get(k)) == v
                                        for k, v in wanted.items())), None)


def active_job_ids(session: Session, zoo_id: str) -> list[str]:
    return list(session.scalars(select(Job.id).where(Job.zoo_id == zoo_id, Job.state.in_(("queued", "running")))))


def _insert(session: Session, model: type):  # dialect-specific INSERT for ON CONFLICT
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(model)


def upsert_scores(session: Session, zoo_id: str, values: Iterable[tuple[str, str, float | None]]) -> None:
    """Store (arch_id, metric, value); a concurrent job storing the same key wins nothing and loses nothing."""
    rows = [{"zoo_id": zoo_id, "arch_id": a, "metric": m, "value": v, "created_at": utcnow()} for a, m, v in values]
    if rows:
        stmt = _insert(session, ScoreResult).values(rows)
        session.execute(stmt.on_conflict_do_update(
            index_elements=["zoo_id", "arch_id", "metric"], set_={"value": stmt.excluded.value}
        ))


def scores(session: Session, zoo_id: str, arch_ids: Sequence[str]) -> dict[tuple[str, str], float | None]:
    found: dict[tuple[str, str], float | None] = {}
    for start in range(0, len(arch_ids), 500):  # keep IN lists short
        chunk = list(arch_ids[start:start + 500])
        for row in session.execute(
            select(ScoreResult.arch_id, ScoreResult.metric, ScoreResult.value)
            .where(ScoreResult.zoo_id == zoo_id, ScoreResult.arch_id.in_(chunk))
        ):
            found[(row.arch_id, row.metric)] = row.value
    return found


def upsert_blocks(session: Session, zoo_id: str, blocks: Iterable[dict[str, Any]]) -> None:
    rows = [{"zoo_id": zoo_id, "created_at": utcnow(), **b} for b in blocks]
    if rows:
        stmt = _insert(session, Block).values(rows)
        session.execute(stmt.on_conflict_do_update(
            index_elements=["zoo_id", "stage", "block"],
            set_={"content_hash": stmt.excluded.content_hash, "path": stmt.excluded.path,
                  "metrics": stmt.excluded.metrics},
        ))


def stored_block_keys(session: Session, zoo_id: str) -> set[tuple[int, str]]:
    return {(stage, block) for stage, block in session.execute(
        select(Block.stage, Block.block).where(Block.zoo_id == zoo_id))}


def delete(session: Session, zoo: Zoo) -> None:
    session.delete(zoo)
