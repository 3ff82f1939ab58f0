"""Helpers shared by the zoo job kinds: open the zoo, record distilled blocks as rows."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from blockzoo.space import block_code

from infra.db.models import Zoo
from infra.repositories import zoos as zoos_repo
from worker.context import JobContext

if TYPE_CHECKING:
    from blockzoo.zoo import BlockZoo


def setup_torch(ctx: JobContext) -> None:
    """Apply the thread setting before the first torch op of a job (process-wide, idempotent)."""
    threads = ctx.runtime.settings.torch_threads
    if threads:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def load_zoo_row(ctx: JobContext) -> Zoo:
    with ctx.session() as session:
        zoo = zoos_repo.get(session, ctx.zoo_id or "")
        if zoo is None:
            raise LookupError(f"zoo {ctx.zoo_id!r} no longer exists")
        session.expunge(zoo)
        return zoo


def open_zoo(ctx: JobContext, zoo: Zoo) -> BlockZoo:
    from blockzoo.zoo import BlockZoo

    from blockzoo.training import default_device

    setup_torch(ctx)
    return BlockZoo.open(ctx.storage.resolve(zoo.path), device=default_device())


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
