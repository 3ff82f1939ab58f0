"""``finetune``: train one architecture of a zoo on the zoo's dataset (``blockzoo.finetune.finetune``).

The weights go to ``zoos/<zoo_id>/finetunes/<finetune_id>.safetensors``; a checkpoint beside
them (written each epoch by the core) makes a redelivered job resume, and a job that already
recorded its weights returns that result instead of training again.
"""

from __future__ import annotations

from typing import Any

from blockzoo.jsonable import finite_or_none

from infra.db.models import Finetune
from infra.repositories import datasets as datasets_repo
from infra.repositories import finetunes as finetunes_repo
from infra.repositories import zoos as zoos_repo
from worker.context import JobContext
from worker.jobs.common import load_zoo_row, open_zoo, record_blocks, scaled
from worker.registry import job_kind


def _load(ctx: JobContext) -> Finetune:
    with ctx.session() as session:
        row = finetunes_repo.get(session, ctx.payload["finetune_id"])
        if row is None:
            raise LookupError(f"fine-tune {ctx.payload['finetune_id']!r} no longer exists")
        session.expunge(row)
        return row


@job_kind("finetune")
def finetune(ctx: JobContext) -> dict[str, Any]:
    from blockzoo.data import open_store
    from blockzoo.finetune import finetune as finetune_architecture
    from blockzoo.training import TrainRecipe
    from blockzoo.files import file_sha256

    row = _load(ctx)
    zoo_row = load_zoo_row(ctx)
    path = ctx.storage.finetune_weights_path(zoo_row.path, row.id)
    if row.result and row.content_hash and path.is_file() and file_sha256(path) == row.content_hash:
        return {"finetune_id": row.id, **row.result}  # finished before a redelivery
    with ctx.session() as session:
        dataset = datasets_repo.get(session, zoo_row.dataset_id)
        if dataset is None:
            raise LookupError(f"dataset {zoo_row.dataset_id!r} no longer exists")
        store_path = ctx.storage.resolve(dataset.path)
    arch = zoos_repo.space_of(zoo_row).parse(row.arch_id)
    recipe = TrainRecipe.from_dict(row.recipe)
    zoo = open_zoo(ctx, zoo_row)
    start = 0.0
    if row.init == "zoo":  # distil the missing blocks here, with progress and cancel, and record them
        start = 0.2
        ctx.progress(0.0, f"distilling: the blocks of {arch.id} if missing")
        zoo.ensure_blocks([arch], progress=scaled(ctx, 0.0, start), should_stop=ctx.should_stop)
        record_blocks(ctx, zoo_row, zoo, list(enumerate(arch.expand)))
    ctx.check_stop()
    ctx.progress(start, f"preparing: fine-tuning {arch.id} from {row.init} init")
    path.parent.mkdir(parents=True, exist_ok=True)
    result = finetune_architecture(zoo, arch, open_store(store_path), recipe, init=row.init, out_path=path,
                                   progress=scaled(ctx, start, 1.0), should_stop=ctx.should_stop)
    body = {"arch_id": arch.id, "architecture": arch.to_dict(), "init": result.init,
            "initial_test_accuracy": finite_or_none(result.initial_test_accuracy),
            "test_accuracy": finite_or_none(result.test_accuracy), "steps": result.steps, "seconds": result.seconds,
            "recipe": recipe.to_dict(), "sha256": result.sha256, "bytes": path.stat().st_size}
    ctx.check_stop()  # only the run that owns the job records the weights it wrote
    with ctx.session() as session:
        finetunes_repo.set_result(session, row.id, body, ctx.storage.relative(path), result.sha256)
        session.commit()
    return {"finetune_id": row.id, **body}
