"""Outages of the database and of the broker, against a PostgreSQL and a Redis of the test's own
(issue 14, failures 2 and 3): every request answers 503 with ``Retry-After`` (never 500), nothing
is left half-created, a job that lost the database resumes, and everything recovers without a
restart. The machine's shared services are never stopped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from private_services import PrivatePostgres, PrivateRedis
from service_helpers import LiveServer, assert_error, service_env, start_celery_worker, stop_process, wait_for_job

from app.services import jobs as jobs_service
from infra.db.base import new_id
from infra.db.models import Zoo
from infra.settings import Settings

pytest_plugins = ["service_fixtures"]

SMALL_ZOO = {"space": "mbv3-tiny", "build": "lazy", "reference": {"epochs": 1, "batch_size": 64},
             "distill": {"batches": 4, "batch_size": 32, "heldout_batches": 1}}


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    pg = PrivatePostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.remove()


@pytest.fixture(scope="module")
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    try:
        redis.start()
        yield redis
    finally:
        redis.remove()


def _assert_unavailable(response: httpx.Response, *fragments: str) -> None:
    assert_error(response, 503, "unavailable", *fragments)
    assert int(response.headers["retry-after"]) > 0
    assert response.headers.get("connection") != "close"  # the client keeps its connection


def _wait(predicate, timeout_s: float, what: str) -> Any:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)
    return value


def test_database_outage_answers_503_and_a_job_that_lost_it_resumes(
        private_pg: PrivatePostgres, redis_url_module: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, job_backend="celery", database_url=private_pg.url,
                        redis_url=redis_url_module)
    with LiveServer(settings) as server:
        env = service_env(data_dir=str(tmp_path), job_backend="celery", database_url=private_pg.url,
                          redis_url=redis_url_module, secret_key=server.runtime.secret_key)
        worker = start_celery_worker(env, tmp_path / "worker.log")
        try:
            owner_id, key = server.new_owner("outage")
            with server.runtime.session_factory() as session:
                job_id = jobs_service.submit(session, owner_id=owner_id, kind="selftest",
                                             payload={"steps": 40, "step_s": 0.1, "read_db": True}).id
                session.commit()
            with server.client(key) as c:
                _wait(lambda: c.get(f"/v1/jobs/{job_id}").json()["progress"] >= 0.1, 60, "the job to run")
                private_pg.stop()
                try:
                    for method, path, body in [
                        ("GET", f"/v1/jobs/{job_id}", None), ("GET", "/v1/jobs", None), ("GET", "/v1/zoos", None),
                        ("GET", "/v1/datasets", None), ("POST", f"/v1/jobs/{job_id}/cancel", None),
                        ("POST", "/v1/zoos", {"dataset_id": "ds_x", **SMALL_ZOO}),
                        ("POST", "/v1/datasets/builtin", {"name": "synthetic"}),
                    ]:
                        _assert_unavailable(c.request(method, path, json=body), "database is unavailable")
                    assert c.get("/health").status_code == 200
                    assert_error(c.get("/ready"), 503, "unavailable", "database")
                    time.sleep(1.0)  # the job meets the outage too
                finally:
                    private_pg.start()

                # No restart of anything: the same server, worker and client carry on.
                job = wait_for_job(c, job_id, timeout_s=90)
                assert job["state"] == "succeeded" and job["error"] is None, job
                assert job["attempts"] == 1 and job["cancel_requested"] is False
                assert job["result"]["runs"] >= 2  # the job function ran again once the database was back
                assert c.get("/v1/zoos").status_code == 200
                assert c.get("/ready").json()["status"] == "ready"
        finally:
            stop_process(worker)


def _ready_zoo_row(server: LiveServer, owner_id: str, dataset: dict[str, Any]) -> str:
    """A zoo row in state ready: enough to reach the scoring job's submission."""
    from blockzoo.space import get_space

    zoo_id = new_id("zoo")
    with server.runtime.session_factory.begin() as session:
        session.add(Zoo(id=zoo_id, owner_id=owner_id, dataset_id=dataset["id"], space_name="mbv3-tiny",
                        space=get_space("mbv3-tiny").to_dict(), build="lazy", reference_recipe={},
                        distill_recipe={}, state="ready", path=f"zoos/{zoo_id}", in_channels=1, num_classes=10))
    return zoo_id


class _CheckPasses:
    """The runtime's own backend, except that its check passes: an enqueue that fails after the
    commit (the broker went away between the check and the commit)."""

    def __init__(self, backend: Any) -> None:
        self.backend, self.name = backend, backend.name

    def check(self) -> None:
        pass

    def enqueue(self, job_id: str) -> None:
        self.backend.enqueue(job_id)

    def close(self) -> None:
        self.backend.close()


def test_broker_outage_answers_503_leaves_nothing_half_created_and_recovers(
        private_redis: PrivateRedis, pg_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, job_backend="celery", database_url=pg_url, redis_url=private_redis.url)
    with LiveServer(settings) as server:
        env = service_env(data_dir=str(tmp_path), job_backend="celery", database_url=pg_url,
                          redis_url=private_redis.url, secret_key=server.runtime.secret_key, torch_threads="1")
        worker = start_celery_worker(env, tmp_path / "worker.log")
        try:
            owner_id, key = server.new_owner("broker")
            with server.client(key) as c:
                dataset = c.post("/v1/datasets/builtin", json={"name": "synthetic", "options": {"num_images": 400}})
                assert dataset.status_code == 201, dataset.text
                ready_zoo = _ready_zoo_row(server, owner_id, dataset.json())
                create = {"dataset_id": dataset.json()["id"], **SMALL_ZOO}
                assert wait_for_job(c, _selftest(server, owner_id), timeout_s=120)["state"] == "succeeded"

                totals = (c.get("/v1/zoos").json()["total"], c.get("/v1/jobs").json()["total"])
                private_redis.stop()  # the worker is connected and idle: it loses its broker too
                try:
                    _assert_unavailable(c.post("/v1/zoos", json=create), "job backend", "nothing was created")
                    _assert_unavailable(c.post(f"/v1/zoos/{ready_zoo}/scores",
                                               json={"architectures": ["d11111-e2.2.2.2.2"], "wait": 30}),
                                        "job backend")
                    assert (c.get("/v1/zoos").json()["total"], c.get("/v1/jobs").json()["total"]) == totals

                    # Gone between the check and the commit: the job and its zoo end as failed, with the
                    # reason, and the request still answers 503; the zoo can be deleted.
                    backend = server.runtime.job_queue
                    server.runtime.attach_job_queue(_CheckPasses(backend))
                    try:
                        r = c.post("/v1/zoos", json=create)
                    finally:
                        server.runtime.attach_job_queue(backend)
                    _assert_unavailable(r, "recorded as failed")
                    [job_id] = r.json()["error"]["details"]["job_ids"]
                    job = c.get(f"/v1/jobs/{job_id}").json()
                    assert job["state"] == "failed" and "could not be reached" in job["error"]
                    zoo = c.get("/v1/zoos", params={"limit": 1}).json()["items"][0]
                    assert zoo["state"] == "failed" and "could not be reached" in zoo["error"]
                    assert c.delete(f"/v1/zoos/{zoo['id']}").status_code == 204
                finally:
                    private_redis.start()

                # The same server and worker once the broker is back: jobs are accepted and run.
                job = wait_for_job(c, _selftest(server, owner_id), timeout_s=120)
                assert job["state"] == "succeeded" and job["error"] is None, job
                created = c.post("/v1/zoos", json=create)
                assert created.status_code == 202, created.text
                _wait(lambda: c.get(f"/v1/jobs/{created.json()['job']['id']}").json()["state"] == "running", 60,
                      "the worker to take the build")
        finally:
            worker.kill()  # no need to finish the build: its database goes with the test
            worker.wait(timeout=30)


def _selftest(server: LiveServer, owner_id: str) -> str:
    with server.runtime.session_factory() as session:
        job_id = jobs_service.submit(session, owner_id=owner_id, kind="selftest", payload={}).id
        session.commit()
    return job_id
