"""The reaper's hand-over on both databases: a re-queued job's message always finds it claimable,
and a re-queue whose message cannot be sent is retried by the next sweep (infra.liveness.reap).

The fast worker is played by the ``send`` callable itself: it claims the job in its own session
the moment the message is handed over, as a Celery child on an idle worker can.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from infra import liveness
from infra.db.base import new_id, utcnow
from infra.db.migrate import upgrade
from infra.db.models import Job, Owner
from infra.db.session import make_engine, make_session_factory
from infra.repositories import jobs as jobs_repo
from infra.settings import Settings

pytest_plugins = ["service_fixtures"]


@pytest.fixture(params=["sqlite", "postgresql"])
def factory(request: pytest.FixtureRequest):  # noqa: ANN201
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    engine = make_engine(url)
    upgrade(engine)
    yield make_session_factory(engine)
    engine.dispose()


def _dead_running_job(factory) -> str:  # noqa: ANN001
    """A running job whose run (on another host) stopped beating a minute ago."""
    stale = utcnow() - timedelta(seconds=120)
    with factory() as session:
        owner = Owner(id=new_id("own"), name="reaper-test")
        session.add(owner)
        session.flush()
        job = Job(id=new_id("job"), owner_id=owner.id, kind="selftest", state="running", payload={},
                  attempts=1, run_token="dead-run", runner="elsewhere|ns|1", heartbeat_at=stale,
                  started_at=stale, created_at=stale, updated_at=stale, progress=0.3, message="step 3/10")
        session.add(job)
        session.commit()
        return job.id


def _settings() -> Settings:
    return Settings(heartbeat_timeout_s=60, job_max_attempts=3)


def test_a_requeued_job_is_claimable_when_its_message_arrives(factory) -> None:  # noqa: ANN001
    job_id = _dead_running_job(factory)
    claimed: list[bool] = []

    def send_to_an_idle_worker(sent_id: str) -> None:
        with factory() as session:
            claimed.append(jobs_repo.claim(session, sent_id, "new-run", "here|ns|2"))
            session.commit()

    reaped = liveness.reap(factory, _settings(), send_to_an_idle_worker)
    assert reaped.requeued == [job_id] and claimed == [True]
    with factory() as session:
        job = jobs_repo.get(session, job_id)
        assert job.state == "running" and job.run_token == "new-run" and job.attempts == 2


def test_a_requeue_whose_message_cannot_be_sent_is_retried_by_the_next_sweep(factory) -> None:  # noqa: ANN001
    job_id = _dead_running_job(factory)

    def broker_down(_: str) -> None:
        raise ConnectionError("redis is unreachable")

    assert not liveness.reap(factory, _settings(), broker_down)
    with factory() as session:
        job = jobs_repo.get(session, job_id)
        assert job.state == "running" and job.attempts == 1  # as before: stale, for the next sweep
        assert "unreachable" in job.message

    sent: list[str] = []
    assert liveness.reap(factory, _settings(), sent.append).requeued == [job_id] and sent == [job_id]
    with factory() as session:
        job = jobs_repo.get(session, job_id)
        assert job.state == "queued" and job.run_token is None and "re-queued" in job.message
