"""``search``: best-under-budget search on a zoo (``blockzoo.search.search_zoo``).

Blocks the search distils are recorded like any lazy distillation, and every candidate's
score joins the zoo's score cache, so later score requests for them are instant. The stored
result keeps every evaluated candidate (id, score, MACs, params, and the predicted latency when
the request names a latency table) for the search's plot.
"""

from __future__ import annotations

from typing import Any

from blockzoo.jsonable import finite_or_none, json_safe
from blockzoo.signals import COST_SIGNALS

from infra.repositories import searches as searches_repo
from infra.repositories import zoos as zoos_repo
from worker.context import JobContext
from worker.jobs.common import load_latency_table, load_zoo_row, open_zoo, record_blocks
from worker.registry import job_kind


@job_kind("search")
def search(ctx: JobContext) -> dict[str, Any]:
    from blockzoo.search import Budget, search_zoo

    with ctx.session() as session:
        row = searches_repo.get(session, ctx.payload["search_id"])
        if row is None:
            raise LookupError(f"search {ctx.payload['search_id']!r} no longer exists")
        request = dict(row.request)
    zoo_row = load_zoo_row(ctx)
    table_id = request.get("latency_table_id")
    latency_table = load_latency_table(ctx, zoo_row, table_id) if table_id else None
    zoo = open_zoo(ctx, zoo_row)
    result = search_zoo(
        zoo, Budget(**request["budget"]), request["strategy"], metric=request["metric"], seed=request["seed"],
        latency_table=latency_table, progress=ctx.progress, should_stop=ctx.should_stop, population=request["population"],
        generations=request["generations"], max_evaluations=request["max_evaluations"], top_k=request["top_k"],
    )
    record_blocks(ctx, zoo_row, zoo, {(m, e) for p in result.candidates for m, e in enumerate(p.arch.expand)})
    # The zoo's score cache keeps what the scores endpoint computes (MACs and params come from the cost model).
    cached = request["metric"] not in COST_SIGNALS
    scores = [(p.arch_id, request["metric"], finite_or_none(p.score)) for p in result.candidates if cached]
    body = result.to_dict(candidates=True)
    for point in body["candidates"]:  # every evaluated point, for the plot: costs and score suffice
        point.pop("architecture", None)
    body = json_safe(body)  # PostgreSQL's JSON has no NaN (e.g. heldout_accuracy without held-out batches)
    ctx.check_stop()  # only the run that owns the job records its result
    with ctx.session() as session:
        for start in range(0, len(scores), 500):
            zoos_repo.upsert_scores(session, zoo_row.id, scores[start:start + 500])
        searches_repo.set_result(session, ctx.payload["search_id"], body)
        session.commit()
    best = body["picks"][0] if body["picks"] else None
    return {"search_id": ctx.payload["search_id"], "evaluated": body["evaluated"], "best": best}

