"""Searches: validate the budget up front (pure cost model and latency table), then a ``search`` job does the work.

The plot of a finished search is drawn in the request with matplotlib's Agg canvas, imported
only there, so that the API process stays light until somebody asks for a plot.
"""

from __future__ import annotations

import io
from typing import Any

from blockzoo.search import Budget, InfeasibleBudget, blockwise_cost_fn
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidParameter, NotFound, ServiceError
from app.schemas.searches import SearchCreate
from app.services import jobs as jobs_service
from app.services import latency_tables as latency_service
from app.services import zoos as zoos_service
from app.services.limits import check_search_size
from infra.db.base import new_id
from infra.db.models import Job, Owner, Search
from infra.repositories import jobs as jobs_repo
from infra.repositories import searches as searches_repo
from infra.repositories import zoos as zoos_repo
from infra.repositories.common import get_owned, paginate
from infra.runtime import Runtime


class InvalidBudget(ServiceError):
    status_code, code = 422, "invalid_budget"


def create(session: Session, runtime: Runtime, owner: Owner, zoo_id: str, body: SearchCreate) -> tuple[Search, Job]:
    check_search_size(runtime.settings, body.population, body.generations, body.max_evaluations)
    zoo = zoos_service.get_ready(session, owner, zoo_id)
    space = zoos_repo.space_of(zoo)
    table_id = body.latency_table_id
    latency = latency_service.table_for_zoo(session, runtime, owner, table_id, zoo) if table_id else None
    if body.budget.max_latency_ms is not None and latency is None:
        raise InvalidBudget("max_latency_ms needs latency_table_id: a latency table measured on the device that "
                            "will run the network (upload one with POST /v1/latency-tables or measure one with "
                            "POST /v1/latency-tables/measure; docs/latency.md)", details={"field": "latency_table_id"})
    budget = Budget(**body.budget.model_dump())
    try:
        budget.check_feasible(space, blockwise_cost_fn(space, zoo.in_channels, zoo.num_classes),
                              latency.predict if latency else None, latency.fastest() if latency else None)
    except InfeasibleBudget as exc:
        raise InvalidBudget(str(exc), details={"smallest_achievable": exc.smallest}) from None
    search = searches_repo.add(session, Search(id=new_id("srch"), owner_id=owner.id, zoo_id=zoo.id,
                                                request=body.model_dump()))
    session.flush()  # the search row first: the job names it
    job = jobs_service.submit(session, owner_id=owner.id, kind="search", zoo_id=zoo.id,
                              payload={"search_id": search.id})
    session.flush()
    search.job_id = job.id
    session.flush()
    return search, job  # the job is enqueued once the request commits both rows


def get(session: Session, owner: Owner, search_id: str) -> Search:
    search = get_owned(session, Search, owner.id, search_id)
    if search is None:
        raise NotFound(f"no search {search_id!r}")
    return search


def list_page(session: Session, owner: Owner, limit: int, offset: int,
              zoo_id: str | None = None) -> tuple[list[Search], int]:
    return paginate(session, searches_repo.list_for_owner(owner.id, zoo_id), limit, offset)


def delete(session: Session, owner: Owner, search_id: str) -> None:
    """Delete a finished search (its job row stays in the job list). 409 while it runs."""
    search = get(session, owner, search_id)
    job = jobs_repo.get(session, search.job_id) if search.job_id else None
    if job is not None and job.state in ("queued", "running"):
        raise Conflict(f"search {search_id!r} is {job.state}; cancel it first: POST /v1/jobs/{job.id}/cancel",
                       details={"job_id": job.id, "state": job.state})
    searches_repo.delete(session, search)


def state_of(search: Search, job: Job | None) -> str:
    if job is not None:
        return job.state
    return "succeeded" if search.result else "failed"  # the job row is gone (SET NULL)


def view(session: Session, search: Search) -> dict[str, Any]:
    job = jobs_repo.get(session, search.job_id) if search.job_id else None
    result = search.result or {}
    return {
        "id": search.id, "zoo_id": search.zoo_id, "request": search.request, "created_at": search.created_at,
        "state": state_of(search, job), "job": job,
        "evaluated": result.get("evaluated"), "exhausted": result.get("exhausted"),
        "picks": result.get("picks"), "pareto": (result.get("pareto") or {}).get(front_cost(search)),
        "pareto_cost": front_cost(search), "candidates": result.get("candidates"),
    }


def front_cost(search: Search) -> str:
    """The cost of the search's Pareto front: latency under a latency budget, else MACs."""
    return "latency_ms" if (search.request.get("budget") or {}).get("max_latency_ms") else "macs"


PLOT_AXES = {"macs": "MACs per image (millions)", "params": "parameters (millions)",
             "latency_ms": "predicted latency (ms)"}
_AXIS_UNIT = {"macs": 1e6, "params": 1e6, "latency_ms": 1.0}
_BUDGET_LABEL = {"macs": "MACs budget", "params": "params budget", "latency_ms": "latency budget"}


def plot_axis(search: Search) -> str:
    """The cost the plot is drawn against: the budget's own (latency under a latency budget, params for a
    params-only budget), else MACs."""
    budget = search.request.get("budget") or {}
    if budget.get("max_latency_ms"):
        return "latency_ms"
    return "params" if budget.get("max_params") and not budget.get("max_macs") else "macs"


def plot_png(session: Session, search: Search, axis: str | None = None) -> bytes:
    """Score against a cost (``axis``: macs or params; default :func:`plot_axis`) of every evaluated
    candidate, the Pareto front on that cost and the picks, as a PNG."""
    job = jobs_repo.get(session, search.job_id) if search.job_id else None
    state = state_of(search, job)
    if state != "succeeded" or not search.result:
        hint = (f"poll GET /v1/searches/{search.id} and retry when it succeeded" if state in ("queued", "running")
                else "it has no results to plot")
        raise Conflict(f"search {search.id!r} is {state}; {hint}", details={"job_id": search.job_id, "state": state})
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    result, request = search.result, search.request
    axis = axis or plot_axis(search)
    if axis == "latency_ms" and not request.get("latency_table_id"):
        raise InvalidParameter(f"search {search.id!r} has no latency table: plot it against macs or params, or "
                               "start a search with latency_table_id", details={"axis": axis})
    picks = result.get("picks") or []
    front = (result.get("pareto") or {}).get(axis) or []
    # Searches stored before the candidates were kept: plot what they have (picks and front).
    evaluated = result.get("candidates") or list({p["arch_id"]: p for p in [*front, *picks]}.values())

    def xy(points: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
        kept = [p for p in points if p.get("score") is not None]
        return [p[axis] / _AXIS_UNIT[axis] for p in kept], [p["score"] for p in kept]

    fig = Figure(figsize=(7.5, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter(*xy(evaluated), s=16, color="0.6", alpha=0.7, linewidths=0, label=f"evaluated ({len(evaluated)})")
    if front:
        ax.plot(*xy(front), "-o", color="tab:blue", markersize=5, linewidth=1.5, drawstyle="steps-post",
                label=f"Pareto front ({len(front)})")
    if picks:
        ax.scatter(*xy(picks), marker="*", s=180, color="tab:red", edgecolors="black", linewidths=0.6, zorder=3,
                   label=f"picks (top {len(picks)})")
        for rank, (x, y) in enumerate(zip(*xy(picks)), start=1):
            ax.annotate(str(rank), (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    limit = (request.get("budget") or {}).get(f"max_{axis}")
    if limit:
        ax.axvline(limit / _AXIS_UNIT[axis], linestyle="--", color="0.3", linewidth=1, label=_BUDGET_LABEL[axis])
    metric = request.get("metric", "proxy_accuracy")
    ax.set_xlabel(PLOT_AXES[axis])
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"search {search.id}: {request.get('strategy', '')}, {result.get('evaluated', len(evaluated))} "
                 "evaluated", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
