"""Fine-tunes: validate in the request (pure: space, schema), then a ``finetune`` job trains.

Training needs torch, so it runs where jobs run; the weights land in
``zoos/<zoo_id>/finetunes/<finetune_id>.safetensors`` and are served once the job succeeded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blockzoo.cost_model import cost
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.schemas.finetunes import FinetuneCreate
from app.services import jobs as jobs_service
from app.services import spaces as spaces_service
from app.services import zoos as zoos_service
from app.services.limits import check_epochs
from infra.after_commit import on_commit
from infra.db.base import new_id
from infra.db.models import Finetune, Job, Owner
from infra.repositories import finetunes as finetunes_repo
from infra.repositories import jobs as jobs_repo
from infra.repositories import zoos as zoos_repo
from infra.repositories.common import get_owned, paginate
from infra.runtime import Runtime


def create(session: Session, owner: Owner, zoo_id: str, body: FinetuneCreate) -> tuple[Finetune, Job]:
    check_epochs(session.info["runtime"].settings, body.recipe.model_dump(exclude_none=True), "recipe")
    zoo = zoos_service.get_ready(session, owner, zoo_id)
    arch = spaces_service.parse_architecture(zoos_repo.space_of(zoo), body.architecture)
    finetune = finetunes_repo.add(session, Finetune(
        id=new_id("ft"), owner_id=owner.id, zoo_id=zoo.id, arch_id=arch.id, init=body.init,
        recipe=body.recipe.model_dump(exclude_none=True),
    ))
    session.flush()  # the fine-tune row first: the job names it
    job = jobs_service.submit(session, owner_id=owner.id, kind="finetune", zoo_id=zoo.id,
                              payload={"finetune_id": finetune.id})
    session.flush()
    finetune.job_id = job.id
    session.flush()
    return finetune, job  # the job is enqueued once the request commits both rows


def list_page(session: Session, owner: Owner, limit: int, offset: int,
              zoo_id: str | None = None) -> tuple[list[Finetune], int]:
    return paginate(session, finetunes_repo.list_for_owner(owner.id, zoo_id), limit, offset)


def get(session: Session, owner: Owner, finetune_id: str) -> Finetune:
    finetune = get_owned(session, Finetune, owner.id, finetune_id)
    if finetune is None:
        raise NotFound(f"no fine-tune {finetune_id!r}; GET /v1/finetunes lists yours")
    return finetune


def state_of(finetune: Finetune, job: Job | None) -> str:
    if job is not None:
        return job.state
    return "succeeded" if finetune.result else "failed"  # the job row is gone (SET NULL)


def view(session: Session, finetune: Finetune) -> dict[str, Any]:
    job = jobs_repo.get(session, finetune.job_id) if finetune.job_id else None
    zoo = finetune.zoo
    space = zoos_repo.space_of(zoo)
    arch = space.parse(finetune.arch_id)
    c = cost(space, arch, in_channels=zoo.in_channels, num_classes=zoo.num_classes)
    state = state_of(finetune, job)
    return {
        "id": finetune.id, "zoo_id": finetune.zoo_id, "arch_id": arch.id, "architecture": arch.to_dict(),
        "init": finetune.init, "recipe": finetune.recipe, "macs": c.macs, "params": c.params, "state": state,
        "progress": job.progress if job else (1.0 if state == "succeeded" else 0.0), "job": job,
        "result": finetune.result if state == "succeeded" else None, "created_at": finetune.created_at,
    }


def delete(session: Session, runtime: Runtime, owner: Owner, finetune_id: str) -> None:
    """Delete a finished fine-tune; its weights (and a checkpoint) go once the row is gone. 409 while it runs."""
    finetune = get(session, owner, finetune_id)
    job = jobs_repo.get(session, finetune.job_id) if finetune.job_id else None
    if job is not None and job.state in ("queued", "running"):
        raise Conflict(f"fine-tune {finetune_id!r} is {job.state}; cancel it first: POST /v1/jobs/{job.id}/cancel",
                       details={"job_id": job.id, "state": job.state})
    weights_path = runtime.storage.finetune_weights_path(finetune.zoo.path, finetune.id)
    finetunes_repo.delete(session, finetune)

    def remove_files() -> None:
        weights_path.unlink(missing_ok=True)
        weights_path.with_name(weights_path.stem + ".checkpoint.pt").unlink(missing_ok=True)

    on_commit(session, remove_files)


def weights(session: Session, runtime: Runtime, owner: Owner, finetune_id: str) -> tuple[Finetune, Path]:
    """The fine-tuned weights file; 409 until the fine-tune succeeded."""
    finetune = get(session, owner, finetune_id)
    job = jobs_repo.get(session, finetune.job_id) if finetune.job_id else None
    state = state_of(finetune, job)
    if state in ("queued", "running"):
        raise Conflict(f"fine-tune {finetune_id!r} is {state}; poll GET /v1/finetunes/{finetune_id} and "
                       "download the weights once it succeeded", details={"job_id": finetune.job_id, "state": state})
    if state != "succeeded" or not finetune.path:
        reason = f" ({job.error})" if job is not None and job.error else ""
        raise Conflict(f"fine-tune {finetune_id!r} {state}{reason}: it has no weights; start a new one",
                       details={"job_id": finetune.job_id, "state": state})
    path = runtime.storage.resolve(finetune.path)
    if not path.is_file():
        raise Conflict(f"the weights of fine-tune {finetune_id!r} are missing from the data directory",
                       details={"path": finetune.path})
    return finetune, path
