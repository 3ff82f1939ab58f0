"""``build_zoo``: train the reference, create the zoo directory, and (eager) distil every block.

Resumable (a redelivered job, or ``POST /v1/zoos/{id}/resume`` after a failure or a cancel): a
zoo directory that already has its manifest skips reference training, a trained reference
whose metrics were kept (``reference_metrics.json``) is not trained again, a half-trained one
goes on from its checkpoint, and an eager build distils only the blocks not stored yet (each
block is persisted as it finishes). The metrics reported are always those of the training
that made the reference.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from blockzoo.files import write_atomic

from infra.repositories import datasets as datasets_repo
from infra.repositories import zoos as zoos_repo
from worker.context import JobContext
from worker.jobs.common import load_zoo_row, record_blocks, scaled, setup_torch
from worker.registry import job_kind

BLOCK_ROWS_INTERVAL_S = 5.0
REFERENCE_METRICS = "reference_metrics.json"  # in the zoo folder: what training measured, kept for resumed runs

log = logging.getLogger("blockzoo.worker")


def _mark_failed(ctx: JobContext, error: str) -> None:
    with ctx.session() as session:
        zoos_repo.mark_build_failed(session, ctx.zoo_id or "", error)
        session.commit()
    _record_stored_blocks(ctx)  # what is on disk stays counted: POST /v1/zoos/{id}/resume goes on from it


def _record_stored_blocks(ctx: JobContext) -> None:
    from blockzoo.zoo import BlockZoo

    try:
        zoo_row = load_zoo_row(ctx)
        zoo_dir = ctx.storage.resolve(zoo_row.path)
        if (zoo_dir / "manifest.json").is_file():
            record_blocks(ctx, zoo_row, BlockZoo.open(zoo_dir))
    except Exception:  # the zoo went meanwhile, or its files are unreadable: the failure stands as is
        log.exception("zoo %s: could not record its stored blocks after a failed build", ctx.zoo_id)


@job_kind("build_zoo", on_failure=_mark_failed)
def build_zoo(ctx: JobContext) -> dict[str, Any]:
    from blockzoo.training import default_device
    from blockzoo.zoo import BlockZoo

    setup_torch(ctx)
    zoo_row = load_zoo_row(ctx)
    zoo_dir = ctx.storage.resolve(zoo_row.path)
    eager = zoo_row.build == "eager"
    reference_share = 0.3 if eager else 1.0
    if (zoo_dir / "manifest.json").is_file():
        zoo = BlockZoo.open(zoo_dir, device=default_device())  # resumed after the reference was trained
        if not zoo_row.reference_metrics and (zoo_dir / REFERENCE_METRICS).is_file():
            with ctx.session() as session:  # the first run stopped before it recorded them
                zoos_repo.set_reference(session, zoo_row.id, zoo.manifest["reference"]["sha256"],
                                        json.loads((zoo_dir / REFERENCE_METRICS).read_text()))
                session.commit()
    else:
        zoo, metrics = _train_reference_and_create(ctx, zoo_row, zoo_dir, reference_share)
        with ctx.session() as session:
            zoos_repo.set_reference(session, zoo_row.id, zoo.manifest["reference"]["sha256"], metrics)
            session.commit()

    distilled = 0
    if eager:
        distilled = zoo.build_eager(progress=_eager_progress(ctx, zoo_row, zoo, reference_share),
                                    should_stop=ctx.should_stop)
        record_blocks(ctx, zoo_row, zoo)
    ctx.check_stop()  # a run that lost the job (cancelled as orphaned) must not mark the zoo ready
    with ctx.session() as session:
        zoos_repo.mark_ready(session, zoo_row.id, zoo.manifest["reference"]["sha256"])
        session.commit()
    return {"zoo_id": zoo_row.id, "reference_hash": zoo.manifest["reference"]["sha256"],
            "blocks_distilled": distilled}


def _eager_progress(ctx: JobContext, zoo_row: Any, zoo: Any, start: float) -> Callable[[float, str], None]:
    """The eager phase's progress over all the zoo's blocks, so that a resumed build goes on from
    where it was (not from the start of the phase); stored blocks become rows as it goes, every
    BLOCK_ROWS_INTERVAL_S, so that the zoo's ``blocks_stored`` grows during the build."""
    keys = [(m, e) for m in range(zoo.space.num_stages) for e in zoo.space.stage_blocks(m)]
    total = max(1, len(keys))
    stored_before = sum(zoo.has_block(m, e) for m, e in keys)
    recorded_at, recorded_fraction = -BLOCK_ROWS_INTERVAL_S, 0.0

    def report(fraction: float, message: str) -> None:
        nonlocal recorded_at, recorded_fraction
        done = stored_before + fraction * (total - stored_before)
        ctx.progress(start + (1.0 - start) * done / total, message)
        if fraction > recorded_fraction and time.monotonic() - recorded_at >= BLOCK_ROWS_INTERVAL_S:
            recorded_at, recorded_fraction = time.monotonic(), fraction  # new blocks are on disk
            record_blocks(ctx, zoo_row, zoo)

    return report


def _train_reference_and_create(ctx: JobContext, zoo_row: Any, zoo_dir: Any, share: float) -> tuple[Any, dict]:
    from blockzoo.data import open_store
    from blockzoo.distill import DistillRecipe
    from blockzoo.reference import ReferenceRecipe, train_reference
    from blockzoo.training import default_device
    from blockzoo.zoo import BlockZoo

    with ctx.session() as session:
        dataset = datasets_repo.get(session, zoo_row.dataset_id)
        if dataset is None:
            raise LookupError(f"dataset {zoo_row.dataset_id!r} no longer exists")
        store_path = ctx.storage.resolve(dataset.path)
    store = open_store(store_path)
    space = zoos_repo.space_of(zoo_row)
    zoo_dir.mkdir(parents=True, exist_ok=True)
    uploaded = ctx.storage.uploaded_reference_path(zoo_row.path)
    if uploaded.is_file():  # the user brought the reference: no training
        reference_path, recipe_dict = uploaded, {"source": "upload"}
        metrics: dict[str, Any] = {"source": "upload"}
    else:
        recipe = ReferenceRecipe.from_dict(zoo_row.reference_recipe)
        reference_path, recipe_dict = zoo_dir / "reference.safetensors", recipe.to_dict()
        metrics_path = zoo_dir / REFERENCE_METRICS
        if metrics_path.is_file() and reference_path.is_file():  # trained by an earlier run of this build
            metrics = json.loads(metrics_path.read_text())
        else:
            result = train_reference(space, store, recipe, reference_path,
                                     progress=scaled(ctx, 0.0, share * 0.95), should_stop=ctx.should_stop)
            # The file's hash is the zoo's reference_hash (the zoo rewrites the file with its own
            # metadata); the metrics keep what training measured, for every later run to report.
            metrics = {k: v for k, v in result.to_dict().items() if k not in ("path", "sha256")}
            write_atomic(metrics_path, json.dumps(metrics, indent=2))
    ctx.progress(share * 0.95, "preparing: drawing the KD batches and writing the zoo")
    try:
        zoo = BlockZoo.create(zoo_dir, space, store, reference_path,
                              DistillRecipe.from_dict(zoo_row.distill_recipe), reference_recipe=recipe_dict,
                              device=default_device())
    except RuntimeError as exc:  # load_state_dict: missing/unexpected keys or wrong shapes
        if not uploaded.is_file():
            raise
        raise ValueError(f"the uploaded reference weights do not fit {space.name}'s reference "
                         f"({zoo_row.in_channels} input channels, {zoo_row.num_classes} classes): "
                         f"{' '.join(str(exc).split())[:600]}") from None
    return zoo, metrics
