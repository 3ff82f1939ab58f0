"""Searches: validate the budget up front (pure cost model), then a ``search`` job does the work.

The plot of a finished search is drawn in the request with matplotlib's Agg canvas, imported
only there, so that the API process stays light until somebody asks for a plot.
"""

from __future__ import annotations

import io
from typing import Any

from blockzoo.search import Budget, InfeasibleBudget, blockwise_cost_fn
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, ServiceError
from app.schemas.searches import SearchCreate
from app.services import jobs as jobs_service
from app.services import zoos as zoos_service
from infra.db.base import new_id
from infra.db.models import Job, Owner, Search
from infra.repositories import jobs as jobs_repo
from infra.repositories import searches as searches_repo
from infra.repositories import zoos as zoos_repo
from infra.repositories.common import get_owned


class InvalidBudget(ServiceError):
    status_code, code = 422, "invalid_budget"


def create(session: Session, owner: Owner, zoo_id: str, body: SearchCreate) -> tuple[Search, Job]:
    zoo = zoos_service.get_ready(session, owner, zoo_id)
    space = zoos_repo.space_of(zoo)
    if body.budget.max_latency_ms is not None:
        raise InvalidBudget("max_latency_ms needs a latency table measured on the target device, which the API "
                            "does not take yet; use max_macs / max_params, or `blockzoo` on the command line")
    budget = Budget(**body.budget.model_dump())
    try:
        budget.check_feasible(space, blockwise_cost_fn(space, zoo.in_channels, zoo.num_classes))
    except InfeasibleBudget as exc:
        raise InvalidBudget(str(exc)) from None
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
        "picks": result.get("picks"), "pareto": (result.get("pareto") or {}).get("macs"),
        "candidates": result.get("candidates"),
    }


def plot_png(session: Session, search: Search) -> bytes:
    """Score against MACs of every evaluated candidate, the Pareto front and the picks, as a PNG."""
    job = jobs_repo.get(session, search.job_id) if search.job_id else None
    state = state_of(search, job)
    if state != "succeeded" or not search.result:
        hint = (f"poll GET /v1/searches/{search.id} and retry when it succeeded" if state in ("queued", "running")
                else "it has no results to plot")
        raise Conflict(f"search {search.id!r} is {state}; {hint}", details={"job_id": search.job_id, "state": state})
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    result, request = search.result, search.request
    picks = result.get("picks") or []
    front = (result.get("pareto") or {}).get("macs") or []
    # Searches stored before the candidates were kept: plot what they have (picks and front).
    evaluated = result.get("candidates") or list({p["arch_id"]: p for p in [*front, *picks]}.values())

    def xy(points: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
        kept = [p for p in points if p.get("score") is not None]
        return [p["macs"] / 1e6 for p in kept], [p["score"] for p in kept]

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
    max_macs = (request.get("budget") or {}).get("max_macs")
    if max_macs:
        ax.axvline(max_macs / 1e6, linestyle="--", color="0.3", linewidth=1, label="MACs budget")
    metric = request.get("metric", "proxy_accuracy")
    ax.set_xlabel("MACs per image (millions)")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"search {search.id}: {request.get('strategy', '')}, {result.get('evaluated', len(evaluated))} "
                 "evaluated", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
