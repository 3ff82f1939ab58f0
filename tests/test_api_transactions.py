"""One transaction per request: committed when the route returns, rolled back when it raises.

Probe routes are mounted on the real app (SQLite + local backend) and use the real
dependencies and services; the database and the job queue are observed directly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from service_helpers import LiveServer, assert_error, recording_queue
from sqlalchemy import select

from app.api.deps import OwnerDep, SessionDep
from app.errors import Conflict
from app.services import jobs as jobs_service
from infra.after_commit import on_commit
from infra.db.models import ApiKey, Job
from infra.settings import Settings

pytest_plugins = ["service_fixtures"]

COMMITTED: list[str] = []  # jobs whose request finished committing (a deliberately slow after-commit step)


def _submit_probe_job(owner: OwnerDep, session: SessionDep, fail: bool = False) -> dict[str, str]:
    job = jobs_service.submit(session, owner_id=owner.id, kind="selftest", payload={"steps": 1})
    session.flush()  # the row is written inside the request's transaction
    on_commit(session, lambda: (time.sleep(0.5), COMMITTED.append(job.id)))
    if fail:
        raise Conflict(f"probe failed after writing {job.id}", details={"job_id": job.id})
    return {"job_id": job.id}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(Settings(data_dir=tmp_path_factory.mktemp("data"), job_backend="local"))
    live.app.add_api_route("/probe/jobs", _submit_probe_job, methods=["POST"])
    with live:
        yield live


def _job_row(server: LiveServer, job_id: str) -> Job | None:
    with server.runtime.session_factory() as session:
        return session.get(Job, job_id)


def test_a_request_that_returns_is_committed_before_its_response(server: LiveServer) -> None:
    key = server.new_key()
    with recording_queue(server.runtime) as queue, server.client(key) as c:
        r = c.post("/probe/jobs")
        assert r.status_code == 200, r.text
        job_id = r.json()["job_id"]
        # The whole commit, its slow last step included, came before the response.
        assert COMMITTED[-1:] == [job_id]
        assert _job_row(server, job_id) is not None  # read from another session
        assert queue.enqueued == [job_id]


def test_a_request_that_raises_is_rolled_back_and_enqueues_nothing(server: LiveServer) -> None:
    key = server.new_key()
    with recording_queue(server.runtime) as queue, server.client(key) as c:
        error = assert_error(c.post("/probe/jobs", params={"fail": True}), 409, "conflict", "probe failed")
        assert _job_row(server, error["details"]["job_id"]) is None
        assert queue.enqueued == [] and error["details"]["job_id"] not in COMMITTED


def test_authentication_is_recorded_even_when_the_request_fails(server: LiveServer) -> None:
    owner_id, key = server.new_owner("last-used")
    with server.client(key) as c:
        assert_error(c.post("/probe/jobs", params={"fail": True}), 409, "conflict")
    with server.runtime.session_factory() as session:
        api_key = session.scalars(select(ApiKey).where(ApiKey.owner_id == owner_id)).one()
    assert api_key.last_used_at is not None  # the key's use has its own transaction
