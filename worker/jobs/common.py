"""Helpers shared by the zoo job kinds: open the zoo, record distilled blocks as rows, read latency tables."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from blockzoo.space import block_code

from infra import latency_tables
from infra.db.models import Zoo
from infra.repositories import latency_tables as latency_repo
from infra.repositories import zoos as zoos_repo
from worker.context import JobContext

if TYPE_CHECKING:
    from blockzoo.latency.table import LatencyTable as LookupTable
    from blockzoo.zoo import BlockZoo


def setup_torch(ctx: JobContext) -> None:
    """Apply the job thread count before the first torch op of a job (process-wide, idempotent):
    ``BLOCKZOO_TORCH_THREADS``, else ``cores // (job slots + 1)`` (``blockzoo.threads``)."""
    from blockzoo.threads import apply_threads

    apply_threads(ctx.runtime.settings.job_threads())


def load_zoo_row(ctx: JobContext) -> Zoo:
    with ctx.session() as session:
        zoo = zoos_repo.get(session, ctx.zoo_id or "")
        if zoo is None:
            raise LookupError(f"zoo {ctx.zoo_id!r} no longer exists")
        session.expunge(zoo)
        return zoo


def load_latency_table(ctx: JobContext, zoo: Zoo, table_id: str) -> LookupTable:
    """The job owner's latency table ``table_id``, checked to fit ``zoo`` (pure: no torch)."""
    with ctx.session() as session:
        row = latency_repo.get(session, table_id)
        if row is None or row.owner_id != ctx.owner_id:
            raise LookupError(f"latency table {table_id!r} no longer exists")
        session.expunge(row)
    table = latency_tables.load(ctx.storage, row)
    latency_tables.check_fits_zoo(table, zoo)
    return table


def open_zoo(ctx: JobContext, zoo: Zoo) -> BlockZoo:
    from blockzoo.zoo import BlockZoo

    from blockzoo.training import default_device

    setup_torch(ctx)
    opened = BlockZoo.open(ctx.storage.resolve(zoo.path), device=default_device())
    opened.limit_memory(ctx.runtime.settings.score_memory_bytes)  # bounds a job's loaded blocks
    return opened


def record_blocks(ctx: JobContext, zoo_row: Zoo, zoo: BlockZoo,
                  keys: Iterable[tuple[int, tuple[int, ...]]] | None = None) -> int:
    """Upsert a row per stored block (content hash, path, KD stats); ``keys=None``: every stored block."""
    from blockzoo.files import file_sha256

    with ctx.session() as session:
        known = zoos_repo.stored_block_keys(session, zoo_row.id)
    if keys is None:
        keys = [(m, e) for m in range(zoo.space.num_stages) for e in zoo.space.stage_blocks(m)]
    rows = []
    for stage, expand in keys:
        if (stage, block_code(expand)) in known or not zoo.has_block(stage, expand):
            continue
        path = zoo.block_path(stage, expand)
        stats = zoo.block_stats(stage, expand)
        rows.append({"stage": stage, "block": block_code(expand), "content_hash": file_sha256(path),
                     "path": ctx.storage.relative(path), "metrics": {
                         "kd_loss": stats.kd_loss, "first_loss": stats.first_loss,
                         "last_loss": stats.last_loss, "steps": stats.steps}})
        known.add((stage, block_code(expand)))
    for start in range(0, len(rows), 500):
        with ctx.session() as session:
            zoos_repo.upsert_blocks(session, zoo_row.id, rows[start:start + 500])
            session.commit()
    return len(rows)


def scaled(ctx: JobContext, start: float, end: float) -> Callable[[float, str], None]:
    """A progress callback mapping a phase's 0..1 onto the job's start..end."""
    return lambda fraction, message: ctx.progress(start + (end - start) * fraction, message)
