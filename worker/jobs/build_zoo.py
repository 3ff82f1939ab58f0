"""``build_zoo``: train the reference, create the zoo directory, and (eager) distil every block.

Resumable: a zoo directory that already has its manifest skips reference training, and an
eager build distils only the blocks not stored yet (each block is persisted as it finishes).
"""

from __future__ import annotations

from typing import Any

from infra.repositories import datasets as datasets_repo
from infra.repositories import zoos as zoos_repo
from worker.context import JobContext
from worker.jobs.common import load_zoo_row, record_blocks, scaled, setup_torch
from worker.registry import job_kind


def _mark_failed(ctx: JobContext, error: str) -> None:
    with ctx.session() as session:
        zoos_repo.mark_build_failed(session, ctx.zoo_id or "", error)
        session.commit()


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
    else:
        zoo, metrics = _train_reference_and_create(ctx, zoo_row, zoo_dir, reference_share)
        with ctx.session() as session:
            zoos_repo.set_reference(session, zoo_row.id, zoo.manifest["reference"]["sha256"], metrics)
            session.commit()

    distilled = 0
    if eager:
        distilled = zoo.build_eager(progress=scaled(ctx, reference_share, 1.0), should_stop=ctx.should_stop)
        record_blocks(ctx, zoo_row, zoo)
    with ctx.session() as session:
        zoos_repo.mark_ready(session, zoo_row.id, zoo.manifest["reference"]["sha256"])
        session.commit()
    return {"zoo_id": zoo_row.id, "reference_hash": zoo.manifest["reference"]["sha256"],
            "blocks_distilled": distilled}


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
        result = train_reference(space, store, recipe, zoo_dir / "reference.safetensors",
                                 progress=scaled(ctx, 0.0, share * 0.95), should_stop=ctx.should_stop)
        reference_path, recipe_dict = zoo_dir / "reference.safetensors", recipe.to_dict()
        metrics = {k: v for k, v in result.to_dict().items() if k != "path"}
    ctx.progress(share * 0.95, "selecting the KD batches")
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
