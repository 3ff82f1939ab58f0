"""Scores: answered from the cache when complete, else by a ``score`` job (waited on up to ``wait``).

The inline answer and the polled job carry the same body, because both are the job's result
built by :func:`result_body` from the cached score rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from blockzoo.cost_model import cost
from blockzoo.space import Architecture, SearchSpace, unique
from sqlalchemy.orm import Session

from app.db.models import Job, Owner, Zoo
from app.errors import ServiceError
from app.repositories import zoos as zoos_repo
from app.runtime import Runtime
from app.schemas.scores import ScoreRequest
from app.services import jobs as jobs_service
from app.services import spaces as spaces_service
from app.services import zoos as zoos_service

PROXY_METRIC = "proxy_accuracy"


class JobFailed(ServiceError):
    status_code, code = 500, "job_failed"


def missing(values: dict[tuple[str, str], float | None], arch_ids: Sequence[str], metrics: Sequence[str]) -> bool:
    return any((a, m) not in values for a in arch_ids for m in (PROXY_METRIC, *metrics))


def result_body(zoo: Zoo, space: SearchSpace, archs: Sequence[Architecture], metrics: Sequence[str],
                values: dict[tuple[str, str], float | None], job_id: str | None) -> dict[str, Any]:
    items = []
    for arch in archs:
        c = cost(space, arch, in_channels=zoo.in_channels, num_classes=zoo.num_classes)
        items.append({
            "arch_id": arch.id, "architecture": arch.to_dict(), "proxy_accuracy": values.get((arch.id, PROXY_METRIC)),
            "macs": c.macs, "params": c.params, "metrics": {m: values.get((arch.id, m)) for m in metrics},
        })
    return {"zoo_id": zoo.id, "job_id": job_id, "items": items}


def score(session: Session, runtime: Runtime, owner: Owner, zoo_id: str,
          body: ScoreRequest) -> tuple[int, dict[str, Any] | Job]:
    """(200, result body) or (202, the job still running)."""
    zoo = zoos_service.get_ready(session, owner, zoo_id)
    space = zoos_service.space_of(zoo)
    archs = spaces_service.parse_architectures(space, body.architectures)
    metrics = sorted(set(body.metrics))
    ids = [a.id for a in unique(archs)]
    values = zoos_repo.scores(session, zoo.id, ids)
    if not missing(values, ids, metrics):
        return 200, result_body(zoo, space, archs, metrics, values, None)
    job = jobs_service.submit(session, owner_id=owner.id, kind="score", zoo_id=zoo.id,
                              payload={"architectures": [a.id for a in archs], "metrics": metrics})
    session.commit()
    job = jobs_service.wait(runtime.session_factory, job.id, min(body.wait, runtime.settings.max_wait_s))
    if job.state == "succeeded":
        return 200, job.result  # type: ignore[return-value]
    if job.state in ("failed", "cancelled"):
        raise JobFailed(f"scoring job {job.id} {job.state}: {job.error or job.message}",
                        details={"job_id": job.id, "error": job.error})
    return 202, job
