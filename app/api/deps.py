"""Dependencies as ``Annotated`` aliases: ``RuntimeDep``, ``SessionDep``, ``OwnerDep``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.services import auth
from app.services import jobs as jobs_service
from infra.db.models import Owner
from infra.runtime import Runtime

# auto_error=False: our own 401 carries the error shape and a helpful message.
_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer bz_...`.")


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    """One transaction per request: committed when the endpoint returns, rolled back when it raises.

    Jobs the request submitted are enqueued by that commit (``infra.job_queue``); if the job
    backend refused one, the response is a 503 (the job was ended as failed). A service that
    waits on a job commits before it waits, so that the job can run.
    """
    with runtime.session_factory() as session:
        try:
            yield session
        except BaseException:
            try:
                session.rollback()
            except SQLAlchemyError:  # the connection is gone, and the transaction with it: the first error stands
                pass
            raise
        session.commit()
        jobs_service.raise_if_not_enqueued(session)


# scope="function": the commit runs before the response is sent, so a client that reads what it
# just created finds it, and a failed commit is the response's error.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_owner(
    request: Request,
    runtime: RuntimeDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Owner:
    # A short transaction of its own: the key's last use is recorded whatever the request does,
    # and the request's transaction takes no write lock before it writes.
    with runtime.session_factory.begin() as session:
        return auth.authenticate(session, runtime.secret_key, request.headers.get("authorization"))


OwnerDep = Annotated[Owner, Depends(get_owner)]
