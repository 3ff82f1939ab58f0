"""``score``: proxy scores (and requested metrics) of architectures on a zoo, cached per metric.

Distils the blocks the architectures need and the zoo lacks (lazy zoo), scores only what is
not cached yet, stores every value, and returns the same body the API answers inline.
"""

from __future__ import annotations

import math
from typing import Any

from blockzoo.space import unique

from app.repositories import zoos as zoos_repo
from app.schemas.scores import BASELINE_METRICS
from app.services.scores import PROXY_METRIC, result_body
from app.services.zoos import space_of
from worker.context import JobContext
from worker.jobs.common import load_zoo_row, open_zoo, record_blocks, scaled
from worker.registry import job_kind

PROXY_METRICS = (PROXY_METRIC, "kd_loss", "heldout_accuracy")


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@job_kind("score")
def score(ctx: JobContext) -> dict[str, Any]:
    from blockzoo.proxy import score_architectures

    zoo_row = load_zoo_row(ctx)
    space = space_of(zoo_row)
    archs = [space.parse(a) for a in ctx.payload["architectures"]]
    metrics = list(ctx.payload.get("metrics", []))
    todo = unique(archs)
    with ctx.session() as session:
        cached = zoos_repo.scores(session, zoo_row.id, [a.id for a in todo])

    need_proxy = [a for a in todo if any((a.id, m) not in cached for m in PROXY_METRICS)]
    if need_proxy:
        zoo = open_zoo(ctx, zoo_row)
        ctx.progress(0.0, f"distilling the blocks of {len(need_proxy)} architecture(s)")
        zoo.ensure_blocks(need_proxy, progress=scaled(ctx, 0.0, 0.7), should_stop=ctx.should_stop)
        record_blocks(ctx, zoo_row, zoo, {(m, e) for a in need_proxy for m, e in enumerate(a.expand)})
        results = score_architectures(zoo, need_proxy, progress=scaled(ctx, 0.7, 0.85), should_stop=ctx.should_stop)
        values = [(r.arch_id, m, _finite(getattr(r, m))) for r in results for m in PROXY_METRICS]
        with ctx.session() as session:
            zoos_repo.upsert_scores(session, zoo_row.id, values)
            session.commit()

    baselines = [m for m in metrics if m in BASELINE_METRICS]
    need_zero_cost = [a for a in todo if any((a.id, m) not in cached for m in baselines)]
    if baselines and need_zero_cost:
        from blockzoo.zerocost import score_zero_cost

        zoo = open_zoo(ctx, zoo_row)
        batches = list(zip(zoo.kd_data.batches(), zoo.kd_data.label_batches()))
        scores = score_zero_cost(space, need_zero_cost, baselines, batches, zoo_row.in_channels,
                                 zoo_row.num_classes, progress=scaled(ctx, 0.85, 1.0), should_stop=ctx.should_stop)
        values = [(s.arch_id, m, _finite(float(s[m]))) for s in scores for m in baselines]
        with ctx.session() as session:
            zoos_repo.upsert_scores(session, zoo_row.id, values)
            session.commit()

    with ctx.session() as session:
        stored = zoos_repo.scores(session, zoo_row.id, [a.id for a in todo])
    return result_body(zoo_row, space, archs, metrics, stored, ctx.job_id)
