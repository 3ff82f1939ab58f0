"""``validation_train`` and ``validate``: one validation of a zoo, shared by every worker.

Creating a validation queues one ``validation_train`` job per (architecture, seed) and, after
them, the validation's own ``validate`` job:

* ``validation_train`` trains its unit (``blockzoo.validation.pipeline.train_units``) unless it
  is already done or another live worker holds it. A run that dies mid-training leaves its
  checkpoint and frees its claim with it: whoever takes the unit up next (the re-queued job, or
  ``validate``) resumes at the last finished epoch.
* ``validate`` measures every signal (through the zoo's score rows, so values scored before are
  not computed again), trains the units no worker has taken yet, waits for those in flight
  (taking over any whose worker is gone), then writes the report and its plot. It comes last so
  that no worker sits waiting while trainings are still queued, and no job outlives one training
  by much.

Every unit's row counts the runs that trained it to the end (``trained_count``, one per unit).
Each finished unit moves the ``validate`` job's progress (trainings done / total, with an ETA),
even while that job still waits in the queue behind them.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from blockzoo.space import Architecture, SearchSpace
from blockzoo.validation.pipeline import progress_message
from blockzoo.validation.plan import ValidationPlan

from infra.db.base import utcnow
from infra.db.models import Zoo
from infra.repositories import datasets as datasets_repo
from infra.repositories import jobs as jobs_repo
from infra.repositories import validations as validations_repo
from infra.repositories import zoos as zoos_repo
from worker.context import JobContext
from worker.jobs.common import open_zoo, record_blocks, setup_torch
from worker.registry import job_kind

if TYPE_CHECKING:
    from blockzoo.validation.groundtruth import GroundTruth

log = logging.getLogger("blockzoo.worker")


@dataclass
class _Validation:
    id: str
    report_job_id: str | None
    zoo: Zoo
    space: SearchSpace
    plan: ValidationPlan
    store_path: str


def _load(ctx: JobContext) -> _Validation:
    validation_id = ctx.payload["validation_id"]
    with ctx.session() as session:
        row = validations_repo.get(session, validation_id)
        if row is None:
            raise LookupError(f"validation {validation_id!r} no longer exists")
        zoo = zoos_repo.get(session, row.zoo_id)
        if zoo is None:
            raise LookupError(f"zoo {row.zoo_id!r} no longer exists")
        dataset = datasets_repo.get(session, zoo.dataset_id)
        if dataset is None:
            raise LookupError(f"dataset {zoo.dataset_id!r} no longer exists")
        session.expunge(zoo)
        space = zoos_repo.space_of(zoo)
        return _Validation(row.id, row.job_id, zoo, space, ValidationPlan.from_dict(space, row.plan), dataset.path)


def _trainer(ctx: JobContext, validation: _Validation) -> "GroundTruth":
    from blockzoo.data import open_store
    from blockzoo.validation.pipeline import ground_truth

    setup_torch(ctx)
    return ground_truth(ctx.storage.resolve(validation.zoo.path), validation.space,
                        open_store(ctx.storage.resolve(validation.store_path)), validation.plan.recipe, log=log.info)


def _trainer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _stored(record: dict[str, Any]) -> dict[str, Any]:
    """A training's result as its row keeps it (the cache key's inputs are in the cache file)."""
    return {k: v for k, v in record.items() if k != "key_material"}


def _share_progress(ctx: JobContext, validation: _Validation, doing: str) -> None:
    if validation.report_job_id is None:
        return
    with ctx.session() as session:
        done, total, first_started = validations_repo.counts(session, validation.id)
        elapsed = (utcnow() - first_started).total_seconds() if first_started else None
        validations_repo.share_progress(session, validation.report_job_id, min(done / max(total, 1), 0.99),
                                        "training: " + progress_message(done, total, elapsed, doing))
        session.commit()


def _train(ctx: JobContext, validation: _Validation, units: list[tuple[Architecture, int]], *,
           wait: bool) -> tuple[dict[tuple[str, int], dict[str, Any]], set[tuple[str, int]]]:
    """``train_units`` with every start and result recorded on the validation's rows; also
    returns the units this run trained to the end."""
    from blockzoo.validation.pipeline import train_units

    trained: set[tuple[str, int]] = set()

    def started(arch: Architecture, seed: int) -> None:
        with ctx.session() as session:
            validations_repo.mark_started(session, validation.id, arch.id, seed, ctx.job_id, _trainer_name())
            session.commit()
        _share_progress(ctx, validation, f"training {arch.id} seed {seed}")

    def finished(arch: Architecture, seed: int, record: dict[str, Any], trained_here: bool) -> None:
        with ctx.session() as session:
            validations_repo.mark_done(session, validation.id, arch.id, seed, _stored(record),
                                       trained_by=ctx.job_id if trained_here else None, trainer=_trainer_name())
            session.commit()
        if trained_here:
            trained.add((arch.id, seed))
            _share_progress(ctx, validation, f"{arch.id} seed {seed}: test accuracy {record['test_accuracy']:.4f}")

    def waiting(held: list[tuple[Architecture, int]]) -> None:
        _share_progress(ctx, validation, f"waiting for {len(held)} training(s) other workers hold")

    results = train_units(_trainer(ctx, validation), units, should_stop=ctx.should_stop, on_start=started,
                          on_result=finished, on_wait=waiting, wait=wait)
    return results, trained


@job_kind("validation_train")
def validation_train(ctx: JobContext) -> dict[str, Any]:
    validation_id, arch_id, seed = ctx.payload["validation_id"], ctx.payload["arch_id"], ctx.payload["seed"]
    body: dict[str, Any] = {"validation_id": validation_id, "arch_id": arch_id, "seed": seed}
    with ctx.session() as session:
        state = validations_repo.training_state(session, validation_id, arch_id, seed)
    if state is None:
        raise LookupError(f"validation {validation_id!r} no longer has the training {arch_id} seed {seed}")
    if state == "done":
        return {**body, "outcome": "already done"}
    validation = _load(ctx)
    arch = validation.space.parse(arch_id)
    ctx.progress(0.0, f"training: {arch_id} seed {seed}")
    results, trained = _train(ctx, validation, [(arch, seed)], wait=False)
    record = results.get((arch_id, seed))
    if record is None:
        return {**body, "outcome": "held by another worker"}
    outcome = "trained" if (arch_id, seed) in trained else "already done"
    return {**body, "outcome": outcome, "test_accuracy": record["test_accuracy"],
            "resumed_from_step": record.get("resumed_from_step")}


def _stop_trainings(ctx: JobContext, error: str) -> None:
    """The validation will not finish: its trainings still queued or running stop too."""
    with ctx.session() as session:
        ids = validations_repo.job_ids(session, ctx.payload["validation_id"])
        for job in validations_repo.active_jobs(session, [j for j in ids if j != ctx.job_id]):
            if not jobs_repo.cancel_if_queued(session, job.id):
                jobs_repo.request_cancel(session, job.id)
        session.commit()


@job_kind("validate", on_failure=_stop_trainings)
def validate(ctx: JobContext) -> dict[str, Any]:
    from blockzoo.validation.pipeline import build_report
    from blockzoo.validation.plot import plot_report
    from blockzoo.validation.signals import measure_signals

    validation = _load(ctx)
    plan, zoo_row = validation.plan, validation.zoo
    with ctx.session() as session:
        done, total, _ = validations_repo.counts(session, validation.id)
        known = zoos_repo.scores(session, zoo_row.id, [a.id for a in plan.archs])
    share = min(done / max(total, 1), 0.99)
    ctx.progress(share, f"signals: the signals of {len(plan.archs)} architectures")

    def store(values: dict[tuple[str, str], float | None]) -> None:
        with ctx.session() as session:
            zoos_repo.upsert_scores(session, zoo_row.id, [(a, m, v) for (a, m), v in values.items()])
            session.commit()

    def recorded(zoo: Any, archs: Any) -> None:
        record_blocks(ctx, zoo_row, zoo, {(m, e) for a in archs for m, e in enumerate(a.expand)})

    signals = measure_signals(lambda: open_zoo(ctx, zoo_row), validation.space, plan.archs, zoo_row.in_channels,
                              zoo_row.num_classes, known=known, should_stop=ctx.should_stop, on_distilled=recorded,
                              on_values=store,
                              progress=lambda phase, fraction, message: ctx.progress(share, f"signals: {phase}, {message}"))
    records, trained = _train(ctx, validation, plan.units, wait=True)
    ctx.progress(0.99, "report: correlations, bootstrap intervals and the plot")
    report = build_report(plan, [records[(a.id, s)] for a, s in plan.units], signals)
    path = ctx.storage.validation_plot_path(zoo_row.path, validation.id)
    plot_report(report, path, title=f"Validation {validation.id}: {report['n_archs']} architectures of "
                                    f"{validation.space.name} x {len(plan.seeds)} seed(s)")
    with ctx.session() as session:
        validations_repo.set_report(session, validation.id, report, ctx.storage.relative(path))
        session.commit()
    return {"validation_id": validation.id, "n_archs": report["n_archs"], "trainings": len(plan.units),
            "trained_here": len(trained), "verdict": report["verdict"]}
