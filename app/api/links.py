"""Signed links: ``POST /v1/links`` makes one; ``LinkOwnerDep`` lets a download accept one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials

from app.api.deps import OwnerDep, RuntimeDep, _bearer, get_owner
from app.schemas.common import errors
from app.schemas.links import LinkCreate, LinkOut
from app.services import links as links_service
from infra.db.models import Owner

router = APIRouter(tags=["links"])


def get_owner_or_link(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    link_owner: Annotated[str | None, Query(alias="owner", max_length=64,
                                            description="Signed link (POST /v1/links): the owner it acts as.")] = None,
    exp: Annotated[int | None, Query(description="Signed link: when it expires (Unix seconds).")] = None,
    sig: Annotated[str | None, Query(max_length=128, description="Signed link: its signature.")] = None,
) -> Owner:
    """The API key's owner, or, for a request with ``sig`` (a signed link, no key), the link's owner."""
    if sig is not None and not request.headers.get("authorization"):
        with runtime.session_factory() as session:
            owner = links_service.owner_of_link(session, runtime.secret_key, request.url.path,
                                                dict(request.query_params))
            session.expunge(owner)
            return owner
    return get_owner(request, runtime, credentials)


LinkOwnerDep = Annotated[Owner, Depends(get_owner_or_link)]


@router.post("/links", response_model=LinkOut, responses=errors(401, 422))
def create_link(request: Request, owner: OwnerDep, runtime: RuntimeDep, body: LinkCreate) -> LinkOut:
    """A signed, expiring link to one of your downloads (a search's plot, exported or fine-tuned
    weights) that opens in a browser without the API key: it grants that GET, as you, until it expires."""
    path, expires_at = links_service.make_link(runtime.secret_key, owner, body.path, body.expires_in)
    return LinkOut(url=str(request.base_url).rstrip("/") + path, path=path, expires_at=expires_at)
