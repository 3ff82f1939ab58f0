"""Searches: the best architectures under a budget (MACs, params), found on a zoo."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status

from app.api.deps import OwnerDep, RuntimeDep, SessionDep
from app.api.rate_limit import RateLimited
from app.api.links import LinkOwnerDep
from app.schemas.common import Page, PageLimit, PageOffset, errors
from app.schemas.jobs import JobOut
from app.schemas.searches import SearchCreate, SearchOut
from app.services import searches as searches_service

router = APIRouter(tags=["searches"])

SearchId = Annotated[str, Path(examples=["srch_1a2b3c4d5e6f7a8b9c0d"])]


@router.post("/zoos/{zoo_id}/searches", status_code=status.HTTP_202_ACCEPTED, response_model=SearchOut,
             responses=errors(401, 404, 409, 422, 429), dependencies=[RateLimited])
def create_search(owner: OwnerDep, session: SessionDep, runtime: RuntimeDep,
                  zoo_id: Annotated[str, Path(examples=["zoo_5f0c1e9a2b7d4c31a8e6"])],
                  body: SearchCreate) -> SearchOut:
    """Start a search (constrained evolution or random) for the best architectures under `budget`.

    Every candidate fits the budget by construction; an impossible budget is a 422 that says the
    smallest achievable cost. `max_latency_ms` needs `latency_table_id` (a table of the zoo's space
    and shapes, measured on the target device); the Pareto front is then over latency. Poll
    `GET /v1/searches/{id}` (or its job) for the picks.
    """
    search, job = searches_service.create(session, runtime, owner, zoo_id, body)
    return SearchOut(**searches_service.view(session, search) | {"job": JobOut.model_validate(job)})


@router.get("/searches", response_model=Page[SearchOut], responses=errors(401))
def list_searches(owner: OwnerDep, session: SessionDep, limit: PageLimit = 50, offset: PageOffset = 0,
                  zoo_id: Annotated[str | None, Query(max_length=64, description="Only this zoo's.")] = None,
                  ) -> Page[SearchOut]:
    """Your searches, newest first (`zoo_id` filters). Items leave out `candidates`: GET one for them."""
    items, total = searches_service.list_page(session, owner, limit, offset, zoo_id)
    return Page(items=[SearchOut(**searches_service.view(session, s) | {"candidates": None}) for s in items],
                total=total, limit=limit, offset=offset)


@router.delete("/searches/{search_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses=errors(401, 404, 409))
def delete_search(owner: OwnerDep, session: SessionDep, search_id: SearchId) -> Response:
    """Delete a search (409 while its job is queued or running: cancel it first)."""
    searches_service.delete(session, owner, search_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/searches/{search_id}", response_model=SearchOut, responses=errors(401, 404))
def get_search(owner: OwnerDep, session: SessionDep, search_id: SearchId) -> SearchOut:
    """A search: its state and, once succeeded, the picks (best first) and the Pareto front."""
    return SearchOut(**searches_service.view(session, searches_service.get(session, owner, search_id)))


@router.get("/searches/{search_id}/plot.png", response_class=Response,
            responses={200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "The plot (PNG)."},
                       **errors(401, 404, 409)})
def plot_search(owner: LinkOwnerDep, session: SessionDep, search_id: SearchId,
                axis: Annotated[Literal["macs", "params", "latency_ms"] | None, Query(
                    description="The cost on the x axis; default: the budget's own (latency under a latency budget, "
                    "params for a params-only budget, else MACs); latency_ms needs a search with a latency "
                    "table.")] = None) -> Response:
    """A finished search as a picture: score against the budget's cost of every evaluated candidate.

    The Pareto front (score up, cost down) is a line, the picks are stars numbered best first,
    and the budget is a dashed line. 409 until the search succeeded. Opens with the API key or
    a signed link (`POST /v1/links`), e.g. in a browser.
    """
    png = searches_service.plot_png(session, searches_service.get(session, owner, search_id), axis)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
