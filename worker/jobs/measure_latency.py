"""``measure_latency``: a complete latency table, measured on this worker's own device.

The measuring is ``blockzoo.latency.measure_calibrated_table`` (``blockzoo latency measure``
runs the same): every candidate block, the prefix and the head, then the requested number of
random networks end to end for the calibration. The table is written to
``latency_tables/<id>.json`` and its row becomes ``ready``. A Celery deployment routes this kind
to the queue of the device it should run on (``BLOCKZOO_LATENCY_QUEUE``).
"""

from __future__ import annotations

from typing import Any

from blockzoo.space import SearchSpace

from infra.db.models import LatencyTable
from infra.latency_tables import MEASURE_JOB, store, summary
from infra.repositories import latency_tables as latency_repo
from worker.context import JobContext
from worker.jobs.common import setup_torch
from worker.registry import job_kind


def _load(ctx: JobContext) -> LatencyTable:
    with ctx.session() as session:
        row = latency_repo.get(session, ctx.payload["latency_table_id"])
        if row is None:
            raise LookupError(f"latency table {ctx.payload['latency_table_id']!r} no longer exists")
        session.expunge(row)
        return row


def _result(row: LatencyTable) -> dict[str, Any]:
    return {"latency_table_id": row.id, "blocks": row.blocks, "scale": row.scale, "device": row.device,
            "machine": row.machine, "fastest_ms": row.fastest_ms, "largest_ms": row.largest_ms}


def _failed(ctx: JobContext, error: str) -> None:
    with ctx.session() as session:
        latency_repo.mark_failed(session, ctx.payload["latency_table_id"], error)
        session.commit()


@job_kind(MEASURE_JOB, on_failure=_failed)
def measure_latency(ctx: JobContext) -> dict[str, Any]:
    from blockzoo.latency import measure_calibrated_table
    from blockzoo.latency.table import Timing
    from blockzoo.training import default_device

    row = _load(ctx)
    if row.state == "ready":  # a redelivered job whose table is already written
        return _result(row)
    request = dict(row.request or {})
    setup_torch(ctx)
    table = measure_calibrated_table(
        SearchSpace.from_dict(row.space), row.in_channels, row.num_classes, batch_size=row.batch_size,
        device=default_device(), timing=Timing(**request.get("timing", {})),
        architectures=request.get("architectures", 0), coverage=request.get("coverage", 0.95),
        seed=request.get("seed", 0), progress=ctx.progress, should_stop=ctx.should_stop,
    )
    path, content_hash = store(ctx.storage, row.id, table)
    with ctx.session() as session:
        latency_repo.set_measured(session, row.id, summary(table), path, content_hash)
        session.commit()
        done = latency_repo.get(session, row.id)
        assert done is not None
        return _result(done)
