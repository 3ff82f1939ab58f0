"""Validations and their trainings (one row per architecture and seed)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, select, update
from sqlalchemy.orm import Session

from infra.db.base import utcnow
from infra.db.models import Job, Validation, ValidationTraining
from infra.repositories.jobs import ACTIVE


def add(session: Session, validation: Validation) -> Validation:
    session.add(validation)
    return validation


def add_training(session: Session, validation_id: str, position: int, arch_id: str, seed: int,
                 job_id: str | None) -> ValidationTraining:
    row = ValidationTraining(validation_id=validation_id, position=position, arch_id=arch_id, seed=seed,
                             job_id=job_id, state="pending", trained_count=0)
    session.add(row)
    return row


def get(session: Session, validation_id: str) -> Validation | None:
    return session.get(Validation, validation_id, populate_existing=True)


def list_for_owner(owner_id: str, zoo_id: str | None = None) -> Select[tuple[Validation]]:
    query = select(Validation).where(Validation.owner_id == owner_id).order_by(Validation.created_at.desc(),
                                                                              Validation.id)
    if zoo_id:
        query = query.where(Validation.zoo_id == zoo_id)
    return query


def trainings(session: Session, validation_id: str) -> list[ValidationTraining]:
    return list(session.scalars(select(ValidationTraining).where(ValidationTraining.validation_id == validation_id)
                                .order_by(ValidationTraining.position)))


def _unit(validation_id: str, arch_id: str, seed: int):  # noqa: ANN202 - a WHERE clause
    return ((ValidationTraining.validation_id == validation_id) & (ValidationTraining.arch_id == arch_id)
            & (ValidationTraining.seed == seed))


def training_state(session: Session, validation_id: str, arch_id: str, seed: int) -> str | None:
    return session.scalar(select(ValidationTraining.state).where(_unit(validation_id, arch_id, seed)))


def mark_started(session: Session, validation_id: str, arch_id: str, seed: int, job_id: str, trainer: str) -> None:
    """A run holds the training and starts (or resumes) it."""
    session.execute(update(ValidationTraining).where(_unit(validation_id, arch_id, seed),
                                                     ValidationTraining.state != "done")
                    .values(state="training", trained_by_job_id=job_id, trainer=trainer[:200],
                            started_at=func.coalesce(ValidationTraining.started_at, utcnow())))


def mark_done(session: Session, validation_id: str, arch_id: str, seed: int, result: dict[str, Any], *,
              trained_by: str | None, trainer: str | None = None) -> None:
    """The training's result is known; ``trained_by`` (a job id) when that job trained it to the end."""
    values: dict[str, Any] = {"state": "done", "result": result,
                              "finished_at": func.coalesce(ValidationTraining.finished_at, utcnow())}
    if trained_by is not None:
        values.update(trained_count=ValidationTraining.trained_count + 1, trained_by_job_id=trained_by,
                      trainer=(trainer or "")[:200] or None)
    session.execute(update(ValidationTraining).where(_unit(validation_id, arch_id, seed)).values(**values))


def counts(session: Session, validation_id: str) -> tuple[int, int, datetime | None]:
    """(trainings done, trainings in all, when the first one started)."""
    row = session.execute(
        select(func.count(case((ValidationTraining.state == "done", 1))), func.count(),
               func.min(ValidationTraining.started_at))
        .where(ValidationTraining.validation_id == validation_id)
    ).one()
    return int(row[0]), int(row[1]), row[2]


def set_report(session: Session, validation_id: str, report: dict[str, Any], plot_path: str | None) -> None:
    result = session.execute(update(Validation).where(Validation.id == validation_id)
                             .values(report=report, plot_path=plot_path, updated_at=utcnow()))
    if result.rowcount != 1:
        raise LookupError(f"validation {validation_id!r} no longer exists")


def job_ids(session: Session, validation_id: str) -> list[str]:
    """The validation's report job and its trainings' jobs."""
    parent = session.scalar(select(Validation.job_id).where(Validation.id == validation_id))
    children = session.scalars(select(ValidationTraining.job_id).where(
        ValidationTraining.validation_id == validation_id, ValidationTraining.job_id.is_not(None)))
    return [j for j in (parent, *children) if j]


def active_jobs(session: Session, job_ids_: Iterable[str]) -> list[Job]:
    ids = list(job_ids_)
    if not ids:
        return []
    return list(session.scalars(select(Job).where(Job.id.in_(ids), Job.state.in_(ACTIVE))))


def share_progress(session: Session, job_id: str, fraction: float, message: str) -> None:
    """Progress of the whole validation on its report job, written by whichever training finished
    (the report job may still be queued behind them); it never goes backwards."""
    fraction = round(min(1.0, max(0.0, fraction)), 4)
    session.execute(update(Job).where(Job.id == job_id, Job.state.in_(ACTIVE))
                    .values(progress=case((Job.progress > fraction, Job.progress), else_=fraction),
                            message=message[:500], updated_at=utcnow()))


def delete(session: Session, validation: Validation) -> None:
    session.delete(validation)
