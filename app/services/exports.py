"""An assembled architecture as a file: made once per format by an ``export`` job, then served.

Exporting loads torch (assembly, BN recalibration, tracing), so it runs in the job runner, not
in the API process; the file lands in ``zoos/<zoo_id>/exports/<arch_id>.<format>``.
"""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
from sqlalchemy.orm import Session

from app.services import jobs as jobs_service
from app.services import spaces as spaces_service
from app.services import zoos as zoos_service
from app.services.scores import JobFailed
from infra.db.models import Job, Owner, Zoo
from infra.repositories import zoos as zoos_repo
from infra.runtime import Runtime

# safetensors: weights for blockzoo.build_network; pt2, onnx: whole models for plain torch or
# onnxruntime, preprocessing inside (blockzoo.deploy; docs/deploy-model.md).
FORMATS = ("safetensors", "pt2", "onnx")


async def weights(session: Session, runtime: Runtime, owner: Owner, zoo_id: str, arch_id: str,
                  wait_s: float, file_format: str = "safetensors") -> tuple[Zoo, str, Path | Job]:
    """(zoo, canonical arch id, the file) when exported within ``wait_s``, else (zoo, id, the job).

    Each format is its own file and its own export job (``FORMATS``). The wait does not hold a
    worker thread (``jobs.wait_async``).
    """
    zoo, canonical, started = await anyio.to_thread.run_sync(start, session, runtime, owner, zoo_id, arch_id,
                                                             file_format)
    if not isinstance(started, Job):
        return zoo, canonical, started
    job = await jobs_service.wait_async(runtime.session_factory, started.id, min(wait_s, runtime.settings.max_wait_s))
    path = runtime.storage.export_path(zoo.path, canonical, file_format)
    if job.state == "succeeded" and path.is_file():
        return zoo, canonical, path
    if job.state in ("failed", "cancelled"):
        raise JobFailed(f"export job {job.id} {job.state}: {job.error or job.message}",
                        details={"job_id": job.id, "error": job.error})
    return zoo, canonical, job


def start(session: Session, runtime: Runtime, owner: Owner, zoo_id: str, arch_id: str,
          file_format: str) -> tuple[Zoo, str, Path | Job]:
    """(zoo, canonical arch id, the file if exported, else the committed export job making it)."""
    zoo = zoos_service.get_ready(session, owner, zoo_id)
    arch = spaces_service.parse_architecture(zoos_repo.space_of(zoo), arch_id)
    path = runtime.storage.export_path(zoo.path, arch.id, file_format)
    if path.is_file():
        return zoo, arch.id, path
    job = zoos_repo.active_job(session, zoo.id, "export", "arch_id", arch.id, defaults={"format": "safetensors"},
                               format=file_format)
    if job is None:
        job = jobs_service.submit(session, owner_id=owner.id, kind="export", zoo_id=zoo.id,
                                  payload={"arch_id": arch.id, "format": file_format})
        session.commit()  # the request waits on the job: it must be enqueued (committed) first
        jobs_service.raise_if_not_enqueued(session)  # 503: the backend refused it, nothing will run it
    return zoo, arch.id, job
