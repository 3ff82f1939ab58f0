"""Zoos: create (a build job), resume a failed build, read, delete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from blockzoo.distill_recipe import DistillRecipe
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, InvalidRecipe, NotFound
from app.schemas.zoos import ZooCreate
from app.services import datasets as datasets_service
from app.services import jobs as jobs_service
from app.services import spaces as spaces_service
from app.services.limits import check_epochs
from app.services.uploads import ReceivedUpload
from infra.after_commit import on_commit
from infra.db.base import new_id
from infra.db.models import Job, Owner, Zoo
from infra.repositories import zoos as zoos_repo
from infra.repositories.common import get_owned, paginate
from infra.runtime import Runtime


def create(session: Session, owner: Owner, body: ZooCreate) -> tuple[Zoo, Job | None]:
    dataset = datasets_service.get(session, owner, body.dataset_id)
    space = spaces_service.resolve(body.space)
    check_distill_recipe(body.distill.model_dump(exclude_none=True), dataset.id, dataset.num_train)
    recipe = body.reference.model_dump(exclude_none=True)
    check_epochs(session.info["runtime"].settings, recipe, "reference")
    upload = bool(recipe.pop("weights_upload", False))
    zoo_id = new_id("zoo")
    zoo = zoos_repo.add(session, Zoo(
        id=zoo_id, owner_id=owner.id, dataset_id=dataset.id, space_name=space.name, space=space.to_dict(),
        build=body.build, reference_recipe=recipe, distill_recipe=body.distill.model_dump(exclude_none=True),
        state="needs_reference" if upload else "building", path=f"zoos/{zoo_id}",
        in_channels=int(dataset.image_shape[2]), num_classes=dataset.num_classes,
    ))
    session.flush()  # the zoo row first: the job references it
    job = None
    if not upload:  # the build job is enqueued once the request commits, with the zoo row
        job = jobs_service.submit(session, owner_id=owner.id, kind="build_zoo", payload={}, zoo_id=zoo_id)
        session.flush()
    return zoo, job


def check_distill_recipe(fields: dict[str, Any], dataset_id: str, num_train: int) -> None:
    """422 before any work when the recipe cannot run on the dataset: the rule the build job applies."""
    try:
        recipe = DistillRecipe.from_dict(fields)
    except ValueError as exc:
        raise InvalidRecipe(str(exc)) from None
    problem = recipe.training_images_problem(num_train)
    if problem:
        raise InvalidRecipe(f"distill: {problem} (dataset {dataset_id!r})",
                            details={"field": "distill", "training_images_needed": recipe.training_images_needed,
                                     "training_images": num_train})


def attach_reference(session: Session, runtime: Runtime, owner: Owner, zoo_id: str,
                     upload: ReceivedUpload) -> tuple[Zoo, Job]:
    """Take uploaded reference weights for a ``needs_reference`` zoo and start its build."""
    try:
        zoo = get(session, owner, zoo_id)
        check_safetensors(upload.path)
        # A conditional update, so that of two concurrent uploads exactly one starts a build.
        if not zoos_repo.move_state(session, zoo.id, "needs_reference", "building"):
            session.rollback()
            state = get(session, owner, zoo_id).state
            raise Conflict(f"zoo {zoo_id!r} is {state}; reference weights are taken only by a zoo created "
                           'with "reference": {"weights_upload": true}, once')
        target = runtime.storage.uploaded_reference_path(zoo.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        upload.path.replace(target)
    finally:
        upload.path.unlink(missing_ok=True)
    job = jobs_service.submit(session, owner_id=owner.id, kind="build_zoo", payload={}, zoo_id=zoo.id)
    session.flush()
    session.refresh(zoo)  # the state moved in SQL
    return zoo, job


def resume(session: Session, owner: Owner, zoo_id: str) -> tuple[Zoo, Job]:
    """Continue a failed or cancelled build from what is on disk: a new ``build_zoo`` job.

    The trained reference (or its checkpoint) and every stored block are kept; the job trains
    and distils only what is missing (``worker/jobs/build_zoo.py``).
    """
    zoo = get(session, owner, zoo_id)
    if zoo.state != "failed" or not zoos_repo.restart_build(session, zoo.id):
        session.rollback()
        zoo = get(session, owner, zoo_id)
        hint = {"building": f"it is still building; poll GET /v1/jobs/{zoos_repo.build_job_id(session, zoo.id)}",
                "ready": "it is ready; nothing to resume",
                "needs_reference": f"it waits for its reference weights: PUT /v1/zoos/{zoo_id}/reference"}
        raise Conflict(f"zoo {zoo_id!r} is {zoo.state}: only a failed or cancelled build resumes; "
                       f"{hint.get(zoo.state, '')}".rstrip("; "),
                       details={"state": zoo.state, "job_id": zoos_repo.build_job_id(session, zoo.id)})
    job = jobs_service.submit(session, owner_id=owner.id, kind="build_zoo", payload={"resume": True}, zoo_id=zoo.id)
    session.flush()
    session.refresh(zoo)  # the state moved in SQL
    return zoo, job  # the job is enqueued once the request commits


def check_safetensors(path: Path) -> None:
    """A cheap, torch-free check that ``path`` is a safetensors file; shapes are checked by the build."""
    hint = ("expected a safetensors state dict of the space's reference (largest) architecture, as "
            "blockzoo.build_network(...).state_dict() saved with safetensors.torch.save_file")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        header_len = int.from_bytes(head, "little") if len(head) == 8 else 0
        if not 2 <= header_len <= min(size - 8, 100 * 1024 * 1024):
            raise InvalidInput(f"not a safetensors file (bad header length); {hint}")
        try:
            header = json.loads(fh.read(header_len))
        except ValueError:
            raise InvalidInput(f"not a safetensors file (header is not JSON); {hint}") from None
    tensors = {k: v for k, v in header.items() if k != "__metadata__"} if isinstance(header, dict) else {}
    if not tensors or not all(isinstance(v, dict) and {"dtype", "shape", "data_offsets"} <= set(v)
                              for v in tensors.values()):
        raise InvalidInput(f"not a safetensors file (no tensors in its header); {hint}")


def list_page(session: Session, owner: Owner, limit: int, offset: int) -> tuple[list[Zoo], int]:
    return paginate(session, zoos_repo.list_for_owner(owner.id), limit, offset)


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
    if zoo.state == "needs_reference":
        raise Conflict(f"zoo {zoo_id!r} waits for its reference weights: PUT /v1/zoos/{zoo_id}/reference")
    if zoo.state == "failed":
        raise Conflict(f"zoo {zoo_id!r} failed to build ({zoo.error}); resume it from what is on disk: "
                       f"POST /v1/zoos/{zoo_id}/resume", details={"state": zoo.state})
    return zoo


def view(session: Session, zoo: Zoo) -> dict[str, Any]:
    data = {c: getattr(zoo, c) for c in (
        "id", "dataset_id", "space_name", "build", "state", "error", "reference_recipe", "distill_recipe",
        "in_channels", "num_classes", "reference_hash", "reference_metrics", "created_at", "updated_at")}
    if data["reference_metrics"]:  # zoos built before: the hash of a file the zoo rewrote; reference_hash is the file's
        data["reference_metrics"] = {k: v for k, v in data["reference_metrics"].items() if k != "sha256"}
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
    on_commit(session, lambda: runtime.storage.remove_tree(path))  # the files go once the row is gone
