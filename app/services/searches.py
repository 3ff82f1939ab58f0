"""Searches: validate the budget up front (pure cost model), then a ``search`` job does the work."""

from __future__ import annotations

from typing import Any

from blockzoo.search import Budget, InfeasibleBudget, blockwise_cost_fn
from sqlalchemy.orm import Session

from app.db.base import new_id
from app.db.models import Job, Owner, Search
from app.errors import NotFound, ServiceError
from app.repositories import jobs as jobs_repo
from app.repositories.common import get_owned
from app.schemas.searches import SearchCreate
from app.services import jobs as jobs_service
from app.services import zoos as zoos_service


class InvalidBudget(ServiceError):
    status_code, code = 422, "invalid_budget"


def create(session: Session, owner: Owner, zoo_id: str, body: SearchCreate) -> tuple[Search, Job]:
    zoo = zoos_service.get_ready(session, owner, zoo_id)
    space = zoos_service.space_of(zoo)
    if body.budget.max_latency_ms is not None:
        raise InvalidBudget("max_latency_ms needs a latency table measured on the target device, which the API "
                            "does not take yet; use max_macs / max_params, or `blockzoo` on the command line")
    budget = Budget(**body.budget.model_dump())
    try:
        budget.check_feasible(space, blockwise_cost_fn(space, zoo.in_channels, zoo.num_classes))
    except InfeasibleBudget as exc:
        raise InvalidBudget(str(exc)) from None
    search = Search(id=new_id("srch"), owner_id=owner.id, zoo_id=zoo.id, request=body.model_dump())
    session.add(search)
    session.flush()
    job = jobs_service.submit(session, owner_id=owner.id, kind="search", zoo_id=zoo.id,
                              payload={"search_id": search.id})
    session.flush()
    search.job_id = job.id
    session.commit()
    return search, job


def get(session: Session, owner: Owner, search_id: str) -> Search:
    search = get_owned(session, Search, owner.id, search_id)
    if search is None:
        raise NotFound(f"no search {search_id!r}")
    return search


def view(session: Session, search: Search) -> dict[str, Any]:
    job = jobs_repo.get(session, search.job_id) if search.job_id else None
    result = search.result or {}
    return {
        "id": search.id, "zoo_id": search.zoo_id, "request": search.request, "created_at": search.created_at,
        "state": job.state if job else ("succeeded" if search.result else "failed"), "job": job,
        "evaluated": result.get("evaluated"), "exhausted": result.get("exhausted"),
        "picks": result.get("picks"), "pareto": (result.get("pareto") or {}).get("macs"),
    }
