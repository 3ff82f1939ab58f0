"""How many jobs an owner has running and queued (the per-owner quotas read these)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from infra.db.models import Job


def active_by_state(session: Session, owner_id: str) -> dict[str, int]:
    """``{"running": n, "queued": m}`` for one owner's unfinished jobs."""
    rows = session.execute(
        select(Job.state, func.count()).where(Job.owner_id == owner_id, Job.state.in_(("queued", "running")))
        .group_by(Job.state)
    )
    counts = {"running": 0, "queued": 0}
    counts.update({state: count for state, count in rows})
    return counts
