"""Validations: the plan is made and checked in the request (pure), then jobs train and report.

One ``validation_train`` job per (architecture, seed) is queued first and the validation's
``validate`` job last (worker/jobs/validate.py says why). The plot is drawn by that job and
served here as the file it wrote: the API process draws nothing and imports no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blockzoo.search import blockwise_cost_fn
from blockzoo.space import ArchitectureError
from blockzoo.validation.plan import ValidationPlan, plan_validation
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidArchitecture, NotFound, ServiceError
from app.schemas.validations import ValidationCreate
from app.services import jobs as jobs_service
from app.services import zoos as zoos_service
from app.services.spaces import to_plain
from infra.after_commit import on_commit
from infra.db.base import new_id
from infra.db.models import Job, Owner, Validation
from infra.repositories import jobs as jobs_repo
from infra.repositories import validations as validations_repo
from infra.repositories import zoos as zoos_repo
from infra.repositories.common import get_owned, paginate
from infra.runtime import Runtime


class InvalidValidation(ServiceError):
    status_code, code = 422, "invalid_validation"


def create(session: Session, owner: Owner, zoo_id: str, body: ValidationCreate) -> Validation:
    zoo = zoos_service.get_ready(session, owner, zoo_id)
    space = zoos_repo.space_of(zoo)
    if body.band is not None and body.design != "budget_band":
        raise InvalidValidation(f"'band' is for design 'budget_band'; this request's design is {body.design!r}")
    try:
        plan = plan_validation(
            space, design=body.design, k=body.k, seeds=body.seeds, arch_seed=body.arch_seed,
            target_macs=body.band.target_macs if body.band else None,
            tolerance=body.band.tolerance if body.band else None,
            architectures=[to_plain(a) for a in body.architectures or []],
            recipe=body.recipe.model_dump(exclude_none=True), in_channels=zoo.in_channels,
            num_classes=zoo.num_classes)
    except ArchitectureError as exc:
        raise InvalidArchitecture(f"architectures: {exc}", details={"space": space.name}) from None
    except ValueError as exc:
        raise InvalidValidation(str(exc)) from None
    validation = validations_repo.add(session, Validation(
        id=new_id("val"), owner_id=owner.id, zoo_id=zoo.id, request=body.model_dump(mode="json", exclude_none=True),
        plan=plan.to_dict()))
    session.flush()  # the validation first: its jobs and trainings name it
    for position, (arch, seed) in enumerate(plan.units):
        job = jobs_service.submit(session, owner_id=owner.id, kind="validation_train", zoo_id=zoo.id,
                                  payload={"validation_id": validation.id, "arch_id": arch.id, "seed": seed})
        session.flush()
        validations_repo.add_training(session, validation.id, position, arch.id, seed, job.id)
    report_job = jobs_service.submit(session, owner_id=owner.id, kind="validate", zoo_id=zoo.id,
                                     payload={"validation_id": validation.id})
    session.flush()
    validation.job_id = report_job.id
    session.flush()
    return validation  # the jobs are enqueued, in this order, once the request commits


def list_page(session: Session, owner: Owner, limit: int, offset: int,
              zoo_id: str | None = None) -> tuple[list[Validation], int]:
    return paginate(session, validations_repo.list_for_owner(owner.id, zoo_id), limit, offset)


def get(session: Session, owner: Owner, validation_id: str) -> Validation:
    validation = get_owned(session, Validation, owner.id, validation_id)
    if validation is None:
        raise NotFound(f"no validation {validation_id!r}; GET /v1/validations lists yours")
    return validation


def state_of(validation: Validation, job: Job | None, started: bool) -> str:
    if job is None:
        return "succeeded" if validation.report else "failed"  # the job row is gone (SET NULL)
    if job.state == "queued" and started:
        return "running"  # its trainings run; the report job comes last
    return job.state


def view(session: Session, validation: Validation, *, full: bool = True) -> dict[str, Any]:
    job = jobs_repo.get(session, validation.job_id) if validation.job_id else None
    zoo = zoos_repo.get(session, validation.zoo_id)
    assert zoo is not None  # the validation would have gone with it
    space = zoos_repo.space_of(zoo)
    plan = ValidationPlan.from_dict(space, validation.plan)
    costs = blockwise_cost_fn(space, zoo.in_channels, zoo.num_classes)
    rows = validations_repo.trainings(session, validation.id)
    done = sum(r.state == "done" for r in rows)
    started = any(r.state != "pending" for r in rows)
    state = state_of(validation, job, started)
    report = validation.report if state == "succeeded" else None
    body: dict[str, Any] = {
        "id": validation.id, "zoo_id": validation.zoo_id, "state": state, "job": job,
        "progress": 1.0 if report else round(min(done / max(len(rows), 1), 0.99), 4),
        "message": _message(state, job, done, len(rows)), "request": validation.request,
        "design": plan.design, "seeds": list(plan.seeds), "recipe": plan.recipe.to_dict(),
        "architectures": [_planned(costs, a) for a in plan.archs],
        "trainings_done": done, "trainings_total": len(rows),
        "verdict": report["verdict"] if report else None,
        "plot_url": f"/v1/validations/{validation.id}/plot.png" if report and validation.plot_path else None,
        "created_at": validation.created_at,
    }
    if full:
        body["trainings"] = [_training(r) for r in rows]
        body["report"] = report
    return body


def _message(state: str, job: Job | None, done: int, total: int) -> str:
    if job is not None and job.state in jobs_repo.ACTIVE and job.message and job.message != "queued":
        return job.message
    if state in ("queued", "running"):
        return f"{done}/{total} trainings done"
    if state == "failed" and job is not None and job.error:
        return f"failed: {job.error}"
    return state


def _planned(costs: Any, arch: Any) -> dict[str, Any]:
    c = costs(arch)
    return {"arch_id": arch.id, "macs": c.macs, "params": c.params}


def _training(row: Any) -> dict[str, Any]:
    result = row.result or {}
    return {"arch_id": row.arch_id, "seed": row.seed, "state": row.state,
            "test_accuracy": result.get("test_accuracy"), "test_nll": result.get("test_nll"),
            "seconds": result.get("seconds"), "resumed_from_step": result.get("resumed_from_step"),
            "trained_count": row.trained_count, "job_id": row.job_id}


def _active_jobs(session: Session, validation: Validation) -> list[Job]:
    """Jobs still working for the validation; none once its report job finished (a training job
    whose worker died may still wait for the reaper then, with nothing left to do)."""
    report_job = jobs_repo.get(session, validation.job_id) if validation.job_id else None
    if report_job is not None and report_job.state in jobs_repo.TERMINAL:
        return []
    return validations_repo.active_jobs(session, validations_repo.job_ids(session, validation.id))


def cancel(session: Session, owner: Owner, validation_id: str) -> Validation:
    """Cancel the report job and every training still queued or running (finished trainings stay cached)."""
    validation = get(session, owner, validation_id)
    active = _active_jobs(session, validation)
    if not active:
        raise Conflict(f"validation {validation_id!r} already finished; nothing to cancel")
    for job in active:
        try:
            jobs_service.cancel(session, owner, job.id)
        except Conflict:
            pass  # finished meanwhile
    return validation


def delete(session: Session, runtime: Runtime, owner: Owner, validation_id: str) -> None:
    """Delete a validation and its plot; its trainings stay in the zoo's cache for later validations."""
    validation = get(session, owner, validation_id)
    active = [j.id for j in _active_jobs(session, validation)]
    if active:
        raise Conflict(f"validation {validation_id!r} is still running; POST /v1/validations/{validation_id}/cancel "
                       "first", details={"job_ids": active})
    plot = validation.plot_path
    validations_repo.delete(session, validation)
    if plot:
        on_commit(session, lambda: runtime.storage.resolve(plot).unlink(missing_ok=True))


def plot_file(session: Session, runtime: Runtime, owner: Owner, validation_id: str) -> Path:
    """The plot the report job drew; 409 until the validation succeeded."""
    validation = get(session, owner, validation_id)
    job = jobs_repo.get(session, validation.job_id) if validation.job_id else None
    started = any(r.state != "pending" for r in validations_repo.trainings(session, validation.id))
    state = state_of(validation, job, started)
    if state != "succeeded" or not validation.plot_path:
        hint = (f"poll GET /v1/validations/{validation_id} and retry when it succeeded"
                if state in ("queued", "running") else "it has no report to plot")
        raise Conflict(f"validation {validation_id!r} is {state}; {hint}",
                       details={"job_id": validation.job_id, "state": state})
    path = runtime.storage.resolve(validation.plot_path)
    if not path.is_file():
        raise Conflict(f"the plot of validation {validation_id!r} is missing from the data directory",
                       details={"path": validation.plot_path})
    return path
