"""Searches: the best architectures under a budget (MACs, params), found on a zoo."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.api.deps import OwnerDep, SessionDep
from app.schemas.common import errors
from app.schemas.jobs import JobOut
from app.schemas.searches import SearchCreate, SearchOut
from app.services import searches as searches_service

router = APIRouter(tags=["searches"])

SearchId = Annotated[str, Path(examples=["srch_1a2b3c4d5e6f7a8b9c0d"])]


@router.post("/zoos/{zoo_id}/searches", status_code=status.HTTP_202_ACCEPTED, response_model=SearchOut,
             responses=errors(401, 404, 409, 422))
def create_search(owner: OwnerDep, session: SessionDep,
                  zoo_id: Annotated[str, Path(examples=["zoo_5f0c1e9a2b7d4c31a8e6"])],
                  body: SearchCreate) -> SearchOut:
    """Start a search (constrained evolution or random) for the best architectures under `budget`.

    Every candidate fits the budget by construction; an impossible budget is a 422 that says the
    smallest achievable cost. Poll `GET /v1/searches/{id}` (or its job) for the picks.
    """
    search, job = searches_service.create(session, owner, zoo_id, body)
    return SearchOut(**searches_service.view(session, search) | {"job": JobOut.model_validate(job)})


@router.get("/searches/{search_id}", response_model=SearchOut, responses=errors(401, 404))
def get_search(owner: OwnerDep, session: SessionDep, search_id: SearchId) -> SearchOut:
    """A search: its state and, once succeeded, the picks (best first) and the Pareto front."""
    return SearchOut(**searches_service.view(session, searches_service.get(session, owner, search_id)))


@router.get("/searches/{search_id}/plot.png", response_class=Response,
            responses={200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "The plot (PNG)."},
                       **errors(401, 404, 409)})
def plot_search(owner: OwnerDep, session: SessionDep, search_id: SearchId) -> Response:
    """A finished search as a picture: score against MACs of every evaluated candidate.

    The Pareto front (score up, MACs down) is a line, the picks are stars numbered best first,
    and a MACs budget is a dashed line. 409 until the search succeeded.
    """
    png = searches_service.plot_png(session, searches_service.get(session, owner, search_id))
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
