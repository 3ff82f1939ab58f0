"""The job machinery on both backends with the core-free ``selftest`` kind.

(a) SQLite + local in-process runner; (b) PostgreSQL + Redis + a real ``celery worker``
process. Jobs are submitted through the service layer (as the API does) and observed over
real HTTP.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import (LiveServer, assert_error, recording_queue, service_env, start_celery_worker, stop_process,
                             wait_for_job)

from app.services import jobs as jobs_service
from infra.db.models import Job
from infra.settings import Settings

pytest_plugins = ["service_fixtures"]


class Stack:
    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.owner_id, self.key = server.new_owner("jobs")

    def submit(self, owner_id: str | None = None, **payload: Any) -> str:
        with self.server.runtime.session_factory() as session:
            job = jobs_service.submit(session, owner_id=owner_id or self.owner_id, kind="selftest", payload=payload)
            session.commit()
            return job.id


@pytest.fixture(scope="module", params=["local", "celery"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp(f"data-{request.param}")
    if request.param == "local":
        with LiveServer(Settings(data_dir=data, job_backend="local")) as server:
            yield Stack(server)
        return
    pg_url = request.getfixturevalue("pg_url_module")
    redis_url = request.getfixturevalue("redis_url_module")
    settings = Settings(data_dir=data, job_backend="celery", database_url=pg_url, redis_url=redis_url)
    with LiveServer(settings) as server:  # migrates the fresh database before the worker starts
        worker = start_celery_worker(
            service_env(data_dir=str(data), job_backend="celery", database_url=pg_url, redis_url=redis_url,
                        secret_key=server.runtime.secret_key),
            data / "worker.log",
        )
        try:
            yield Stack(server)
        finally:
            stop_process(worker)


def test_ready_reports_database_and_backend(stack: Stack) -> None:
    with stack.server.client() as c:
        ready = c.get("/ready").json()
    backend = stack.server.settings.job_backend
    assert ready == {"status": "ready", "job_backend": backend,
                     "database": "sqlite" if backend == "local" else "postgresql"}


def test_job_runs_to_success_with_progress(stack: Stack) -> None:
    job_id = stack.submit(steps=4, step_s=0.05)
    with stack.server.client(stack.key) as c:
        job = wait_for_job(c, job_id, timeout_s=120)
    assert job["state"] == "succeeded", job
    assert job["progress"] == 1.0 and job["attempts"] == 1 and job["error"] is None
    assert job["result"]["steps"] == 4
    if stack.server.settings.job_backend == "celery":
        assert job["result"]["pid"] != os.getpid(), "a celery job must run in the worker process"


def test_failing_job_records_the_error(stack: Stack) -> None:
    job_id = stack.submit(steps=1, fail="disk full")
    with stack.server.client(stack.key) as c:
        job = wait_for_job(c, job_id)
    assert job["state"] == "failed" and job["error"] == "RuntimeError: disk full"


def test_cancel_running_then_queued_job(stack: Stack) -> None:
    running = stack.submit(steps=400, step_s=0.05)
    queued = stack.submit(steps=1)  # one job at a time on both backends: this one waits
    with stack.server.client(stack.key) as c:
        deadline = time.monotonic() + 60
        while c.get(f"/v1/jobs/{running}").json()["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        r = c.post(f"/v1/jobs/{queued}/cancel")
        assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
        r = c.post(f"/v1/jobs/{running}/cancel")
        assert r.status_code == 200 and r.json()["cancel_requested"] is True
        job = wait_for_job(c, running, timeout_s=30)
        assert job["state"] == "cancelled" and job["progress"] < 1.0
        assert_error(c.post(f"/v1/jobs/{running}/cancel"), 409, "conflict", "already finished")
        assert wait_for_job(c, queued)["state"] == "cancelled"  # the runner skipped it


def test_jobs_are_invisible_to_other_owners(stack: Stack) -> None:
    job_id = stack.submit(steps=1)
    _, other_key = stack.server.new_owner("someone else")
    with stack.server.client(other_key) as c:
        assert_error(c.get(f"/v1/jobs/{job_id}"), 404, "not_found")
        assert_error(c.post(f"/v1/jobs/{job_id}/cancel"), 404, "not_found")
        assert job_id not in [j["id"] for j in c.get("/v1/jobs").json()["items"]]
        assert_error(c.get("/v1/jobs/job_doesnotexist"), 404, "not_found")
    with stack.server.client(stack.key) as c:
        page = c.get("/v1/jobs", params={"limit": 2, "kind": "selftest"}).json()
        assert page["limit"] == 2 and len(page["items"]) == 2 and page["total"] >= 4


def test_rolled_back_job_is_never_enqueued(stack: Stack) -> None:
    runtime = stack.server.runtime
    with recording_queue(runtime) as queue, runtime.session_factory() as session:
        rolled_back = jobs_service.submit(session, owner_id=stack.owner_id, kind="selftest", payload={})
        session.flush()  # its row was written, then the transaction is abandoned
        session.rollback()
        assert queue.enqueued == []
        # The same session commits another job afterwards: only that one reaches the backend.
        committed = jobs_service.submit(session, owner_id=stack.owner_id, kind="selftest", payload={"steps": 1})
        assert queue.enqueued == []  # not before the commit either
        session.commit()
        assert queue.enqueued == [committed.id]
        assert session.get(Job, rolled_back.id) is None
    with stack.server.client(stack.key) as c:
        assert wait_for_job(c, committed.id)["state"] == "succeeded"  # the backend ran what it was handed
        assert_error(c.get(f"/v1/jobs/{rolled_back.id}"), 404, "not_found")


def test_local_runner_resumes_jobs_left_by_a_dead_process(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, job_backend="local")
    with LiveServer(settings) as server:
        owner_id, key = server.new_owner()
        with server.runtime.session_factory() as session:
            # A job the previous process had claimed when it died, and one it never started.
            for state in ("running", "queued"):
                session.add(Job(id=f"job_orphan_{state}", owner_id=owner_id, kind="selftest", state=state,
                                payload={"steps": 1}, progress=0.3, message="", cancel_requested=False, attempts=1))
            session.commit()
    with LiveServer(settings) as server, server.client(key) as c:
        for state in ("running", "queued"):
            job = wait_for_job(c, f"job_orphan_{state}", timeout_s=30)
            assert job["state"] == "succeeded", job
