"""Dependencies as ``Annotated`` aliases: ``RuntimeDep``, ``SessionDep``, ``OwnerDep``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.db.models import Owner
from app.runtime import Runtime
from app.services import auth

# auto_error=False: our own 401 carries the error shape and a helpful message.
_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer bz_...`.")


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.session_factory() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_owner(
    request: Request,
    session: SessionDep,
    runtime: RuntimeDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Owner:
    return auth.authenticate(session, runtime.secret_key, request.headers.get("authorization"))


OwnerDep = Annotated[Owner, Depends(get_owner)]
