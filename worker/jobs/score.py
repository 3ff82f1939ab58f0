"""``score``: proxy scores (and requested metrics) of architectures on a zoo, cached per metric.

The scoring itself is ``blockzoo.pipeline.score_on_zoo`` (the CLI runs the same); this job
passes the cached score rows as known values, stores each phase's new values as rows, and
returns the same body the API answers inline.
"""

from __future__ import annotations

from typing import Any

from blockzoo.pipeline import score_on_zoo
from blockzoo.progress import phase_ranges
from blockzoo.space import unique

from infra.repositories import zoos as zoos_repo
from infra.scores import BASELINE_METRICS, result_body
from worker.context import JobContext
from worker.jobs.common import load_latency_table, load_zoo_row, open_zoo, record_blocks
from worker.registry import job_kind

PHASES = {"distilling": (0.0, 0.7), "scoring": (0.7, 0.85), "zero-cost": (0.85, 1.0)}


@job_kind("score")
def score(ctx: JobContext) -> dict[str, Any]:
    zoo_row = load_zoo_row(ctx)
    space = zoos_repo.space_of(zoo_row)
    archs = [space.parse(a) for a in ctx.payload["architectures"]]
    table_id = ctx.payload.get("latency_table_id")
    latency = load_latency_table(ctx, zoo_row, table_id) if table_id else None  # before the work: it may be gone
    metrics = list(ctx.payload.get("metrics", []))
    todo = unique(archs)
    with ctx.session() as session:
        cached = zoos_repo.scores(session, zoo_row.id, [a.id for a in todo])

    def store(values: dict[tuple[str, str], float | None]) -> None:
        with ctx.session() as session:
            zoos_repo.upsert_scores(session, zoo_row.id, [(a, m, v) for (a, m), v in values.items()])
            session.commit()

    def recorded(zoo: Any, distilled: Any) -> None:
        record_blocks(ctx, zoo_row, zoo, {(m, e) for a in distilled for m, e in enumerate(a.expand)})

    score_on_zoo(lambda: open_zoo(ctx, zoo_row), todo, [m for m in metrics if m in BASELINE_METRICS],
                 known=cached, progress=phase_ranges(ctx.progress, PHASES), should_stop=ctx.should_stop,
                 on_distilled=recorded, on_values=store)

    with ctx.session() as session:
        stored = zoos_repo.scores(session, zoo_row.id, [a.id for a in todo])
    return result_body(zoo_row, space, archs, metrics, stored, ctx.job_id, latency, table_id)
