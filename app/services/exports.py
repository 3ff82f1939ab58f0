"""Weights of an assembled architecture: made once by an ``export`` job, then served as a file.

Exporting loads torch (assembly, BN recalibration), so it runs in the job runner, not in the
API process; the file lands in ``zoos/<zoo_id>/exports/<arch_id>.safetensors``.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from app.services import jobs as jobs_service
from app.services import spaces as spaces_service
from app.services import zoos as zoos_service
from app.services.scores import JobFailed
from infra.db.models import Job, Owner, Zoo
from infra.repositories import zoos as zoos_repo
from infra.runtime import Runtime


def weights(session: Session, runtime: Runtime, owner: Owner, zoo_id: str, arch_id: str,
            wait_s: float) -> tuple[Zoo, str, Path | Job]:
    """(zoo, canonical arch id, the file) when exported within ``wait_s``, else (zoo, id, the job)."""
    zoo = zoos_service.get_ready(session, owner, zoo_id)
    arch = spaces_service.parse_architecture(zoos_repo.space_of(zoo), arch_id)
    path = runtime.storage.export_path(zoo.path, arch.id)
    if path.is_file():
        return zoo, arch.id, path
    job = zoos_repo.active_job(session, zoo.id, "export", "arch_id", arch.id)
    if job is None:
        job = jobs_service.submit(session, owner_id=owner.id, kind="export", zoo_id=zoo.id,
                                  payload={"arch_id": arch.id})
        session.commit()  # the request waits on the job below: it must be enqueued (committed) first
    job = jobs_service.wait(runtime.session_factory, job.id, min(wait_s, runtime.settings.max_wait_s))
    if job.state == "succeeded" and path.is_file():
        return zoo, arch.id, path
    if job.state in ("failed", "cancelled"):
        raise JobFailed(f"export job {job.id} {job.state}: {job.error or job.message}",
                        details={"job_id": job.id, "error": job.error})
    return zoo, arch.id, job
