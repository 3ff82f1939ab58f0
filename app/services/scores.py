"""Scores: answered from the cache when complete, else by a ``score`` job (waited on up to ``wait``).

The inline answer and the polled job carry the same body, because both are the job's result
built by :func:`infra.scores.result_body` from the cached score rows.
"""

from __future__ import annotations

from typing import Any

from blockzoo.space import unique
from sqlalchemy.orm import Session

from app.errors import ServiceError
from app.schemas.scores import ScoreRequest
from app.services import jobs as jobs_service
from app.services import spaces as spaces_service
from app.services import zoos as zoos_service
from infra.db.models import Job, Owner
from infra.repositories import zoos as zoos_repo
from infra.runtime import Runtime
from infra.scores import missing, result_body


class JobFailed(ServiceError):
    status_code, code = 500, "job_failed"


def score(session: Session, runtime: Runtime, owner: Owner, zoo_id: str,
          body: ScoreRequest) -> tuple[int, dict[str, Any] | Job]:
    """(200, result body) or (202, the job still running)."""
    zoo = zoos_service.get_ready(session, owner, zoo_id)
    space = zoos_repo.space_of(zoo)
    archs = spaces_service.parse_architectures(space, body.architectures)
    metrics = sorted(set(body.metrics))
    ids = [a.id for a in unique(archs)]
    values = zoos_repo.scores(session, zoo.id, ids)
    if not missing(values, ids, metrics):
        return 200, result_body(zoo, space, archs, metrics, values, None)
    job = jobs_service.submit(session, owner_id=owner.id, kind="score", zoo_id=zoo.id,
                              payload={"architectures": [a.id for a in archs], "metrics": metrics})
    session.commit()  # the request waits on the job below: it must be enqueued (committed) first
    job = jobs_service.wait(runtime.session_factory, job.id, min(body.wait, runtime.settings.max_wait_s))
    if job.state == "succeeded":
        return 200, job.result  # type: ignore[return-value]
    if job.state in ("failed", "cancelled"):
        raise JobFailed(f"scoring job {job.id} {job.state}: {job.error or job.message}",
                        details={"job_id": job.id, "error": job.error})
    return 202, job
