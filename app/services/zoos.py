"""Zoos: create (a build job), read, delete."""

from __future__ import annotations

from typing import Any

from blockzoo.space import SearchSpace
from sqlalchemy.orm import Session

from app.db.base import new_id
from app.db.models import Job, Owner, Zoo
from app.errors import Conflict, NotFound
from app.repositories import zoos as zoos_repo
from app.repositories.common import get_owned
from app.runtime import Runtime
from app.schemas.zoos import ZooCreate
from app.services import datasets as datasets_service
from app.services import jobs as jobs_service
from app.services import spaces as spaces_service


def create(session: Session, owner: Owner, body: ZooCreate) -> tuple[Zoo, Job]:
    dataset = datasets_service.get(session, owner, body.dataset_id)
    space = spaces_service.resolve(body.space)
    zoo_id = new_id("zoo")
    zoo = zoos_repo.add(session, Zoo(
        id=zoo_id, owner_id=owner.id, dataset_id=dataset.id, space_name=space.name, space=space.to_dict(),
        build=body.build, reference_recipe=body.reference.model_dump(exclude_none=True),
        distill_recipe=body.distill.model_dump(exclude_none=True), state="building", path=f"zoos/{zoo_id}",
        in_channels=int(dataset.image_shape[2]), num_classes=dataset.num_classes,
    ))
    session.flush()  # the zoo row first: the job references it
    job = jobs_service.submit(session, owner_id=owner.id, kind="build_zoo", payload={}, zoo_id=zoo_id)
    session.commit()  # the build job is enqueued now, after the zoo row is visible
    return zoo, job


def get(session: Session, owner: Owner, zoo_id: str) -> Zoo:
    zoo = get_owned(session, Zoo, owner.id, zoo_id)
    if zoo is None:
        raise NotFound(f"no zoo {zoo_id!r}; GET /v1/zoos lists yours")
    return zoo


def get_ready(session: Session, owner: Owner, zoo_id: str) -> Zoo:
    zoo = get(session, owner, zoo_id)
    if zoo.state == "building":
        job_id = zoos_repo.build_job_id(session, zoo.id)
        raise Conflict(f"zoo {zoo_id!r} is still building; poll GET /v1/jobs/{job_id} and retry when it succeeded",
                       details={"job_id": job_id})
    if zoo.state == "failed":
        raise Conflict(f"zoo {zoo_id!r} failed to build ({zoo.error}); create a new zoo")
    return zoo


def space_of(zoo: Zoo) -> SearchSpace:
    return SearchSpace.from_dict(zoo.space)


def view(session: Session, zoo: Zoo) -> dict[str, Any]:
    data = {c: getattr(zoo, c) for c in (
        "id", "dataset_id", "space_name", "build", "state", "error", "reference_recipe", "distill_recipe",
        "in_channels", "num_classes", "reference_hash", "reference_metrics", "created_at", "updated_at")}
    data["blocks_stored"] = zoos_repo.block_count(session, zoo.id)
    data["build_job_id"] = zoos_repo.build_job_id(session, zoo.id)
    return data


def delete(session: Session, runtime: Runtime, owner: Owner, zoo_id: str) -> None:
    zoo = get(session, owner, zoo_id)
    active = zoos_repo.active_job_ids(session, zoo.id)
    if active:
        raise Conflict(f"zoo {zoo_id!r} has unfinished jobs ({', '.join(active)}); cancel them first",
                       details={"job_ids": active})
    path = zoo.path
    zoos_repo.delete(session, zoo)
    session.commit()
    runtime.storage.remove_tree(path)
