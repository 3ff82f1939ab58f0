"""Following jobs: phase and ETA in the job view, the server-sent event stream, the clients that
read it (``blockzoo follow``, ``blockzoo demo``), over real HTTP (SQLite + local backend)."""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from service_helpers import LiveServer, assert_error

from app.demo import run_demo
from app.follow import JobProgress, follow_job, parse_events
from app.services import job_events
from app.services import jobs as jobs_service
from infra.db.models import Job
from infra.repositories import jobs as jobs_repo
from infra.settings import Settings
from worker.registry import JOB_KINDS, job_kind

pytest_plugins = ["service_fixtures"]

RELEASE = threading.Event()  # lets the probe job below finish

if "progress_probe" not in JOB_KINDS:
    @job_kind("progress_probe")
    def progress_probe(ctx: Any) -> dict[str, Any]:
        """Reports a throttled training step, then a new phase within the throttle interval."""
        ctx.progress(0.25, "training: step 1/4 loss 1.000")
        ctx.progress(0.30, "training: step 2/4 loss 0.900")  # within the interval: not written
        after_throttled = _own_message(ctx)
        ctx.progress(0.50, "evaluating: 5/10 test images")   # a new phase: written at once
        after_new_phase = _own_message(ctx)
        RELEASE.wait(20)
        return {"after_throttled": after_throttled, "after_new_phase": after_new_phase}


def _own_message(ctx: Any) -> str:
    with ctx.session() as session:
        return jobs_repo.get(session, ctx.job_id).message  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(Settings(data_dir=tmp_path_factory.mktemp("data"), job_backend="local",
                             local_workers=4)) as live:
        yield live


@pytest.fixture(scope="module")
def owner(server: LiveServer) -> tuple[str, str]:
    return server.new_owner("follower")


def _submit(server: LiveServer, owner_id: str, kind: str = "selftest", **payload: Any) -> str:
    with server.runtime.session_factory() as session:
        job = jobs_service.submit(session, owner_id=owner_id, kind=kind, payload=payload)
        session.commit()
        return job.id


def _stuck_job(server: LiveServer, owner_id: str) -> str:
    """A queued job no backend was told about: it stays as it is until the test ends it."""
    from infra.db.base import new_id

    with server.runtime.session_factory() as session:
        job = jobs_repo.add(session, Job(id=new_id("job"), owner_id=owner_id, kind="selftest", payload={},
                                         state="queued", progress=0.0, message="queued", cancel_requested=False,
                                         attempts=0))
        session.commit()
        return job.id


def _end(server: LiveServer, job_id: str) -> None:
    with server.runtime.session_factory() as session:
        jobs_repo.cancel_if_queued(session, job_id)
        session.commit()


def _read_stream(client: httpx.Client, job_id: str) -> tuple[httpx.Response, list[str]]:
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        lines = list(response.iter_lines()) if response.status_code == 200 else [response.read().decode()]
    return response, lines


def test_job_view_names_the_phase_and_estimates_the_time_left(server: LiveServer, owner) -> None:
    owner_id, key = owner
    RELEASE.clear()
    job_id = _submit(server, owner_id, kind="progress_probe")
    with server.client(key) as c:
        deadline = time.monotonic() + 30
        while (job := c.get(f"/v1/jobs/{job_id}").json())["phase"] != "evaluating":
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        time.sleep(0.5)
        job = c.get(f"/v1/jobs/{job_id}").json()
        assert job["state"] == "running" and job["progress"] == 0.5
        started = datetime.fromisoformat(job["started_at"].replace("Z", "+00:00"))
        elapsed = (datetime.now(timezone.utc) - started).total_seconds()
        # Half done after `elapsed` seconds: as long again to go.
        assert job["eta_s"] is not None and elapsed >= 0.5 and abs(job["eta_s"] - elapsed) < 1.0
        RELEASE.set()
        final = follow_job(c, job_id)
    assert final["state"] == "succeeded" and final["phase"] is None and final["eta_s"] is None
    assert final["result"] == {"after_throttled": "training: step 1/4 loss 1.000",
                               "after_new_phase": "evaluating: 5/10 test images"}


def test_event_stream_sends_each_change_and_ends_with_the_final_state(server: LiveServer, owner) -> None:
    owner_id, key = owner
    job_id = _submit(server, owner_id, steps=6, step_s=0.3)
    with server.client(key) as c:
        response, lines = _read_stream(c, job_id)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert lines[0] == "retry: 2000"
    events = list(parse_events(lines))
    names = [name for name, _ in events]
    assert names[-1] == "end" and set(names[:-1]) == {"job"}
    jobs = [data for name, data in events if name == "job"]
    progress = [j["progress"] for j in jobs]
    assert progress == sorted(progress) and len(set(progress)) >= 3  # it moved while followed
    assert jobs[-1]["state"] == "succeeded" and jobs[-1]["result"]["steps"] == 6
    assert events[-1][1] == jobs[-1]  # the end event carries the final view
    assert {"phase", "eta_s", "message"} <= set(jobs[0])
    assert inspect.isasyncgenfunction(job_events.stream)  # waits on the event loop, not in a thread


def test_event_stream_of_a_finished_job_is_its_final_state(server: LiveServer, owner) -> None:
    owner_id, key = owner
    job_id = _submit(server, owner_id, steps=1, step_s=0.0)
    with server.client(key) as c:
        follow_job(c, job_id, events=False)
        _, lines = _read_stream(c, job_id)
    assert [name for name, _ in parse_events(lines)] == ["job", "end"]


def test_quiet_stream_sends_heartbeats_and_ends_at_its_lifetime(server: LiveServer, owner,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    owner_id, key = owner
    monkeypatch.setattr(job_events, "HEARTBEAT_INTERVAL_S", 0.3)
    monkeypatch.setattr(job_events, "MAX_STREAM_S", 1.5)
    job_id = _stuck_job(server, owner_id)
    try:
        with server.client(key) as c:
            started = time.monotonic()
            _, lines = _read_stream(c, job_id)
            seconds = time.monotonic() - started
    finally:
        _end(server, job_id)
    assert lines.count(": heartbeat") >= 2
    events = list(parse_events(lines))
    assert [name for name, _ in events] == ["job", "reconnect"] and "open a new one" in events[-1][1]["reason"]
    assert 1.4 <= seconds < 10


def test_event_stream_is_owner_scoped(server: LiveServer, owner) -> None:
    owner_id, _ = owner
    job_id = _submit(server, owner_id, steps=1, step_s=0.0)
    other = server.new_key("someone else")
    with server.client(other) as c:
        assert_error(c.get(f"/v1/jobs/{job_id}/events"), 404, "not_found", job_id)
    with server.client("bz_not-a-key") as c:
        assert_error(c.get(f"/v1/jobs/{job_id}/events"), 401, "unauthorized")


def test_follow_reports_every_change_by_stream_or_by_polling(server: LiveServer, owner) -> None:
    owner_id, key = owner
    for use_events in (True, False):
        job_id = _submit(server, owner_id, steps=4, step_s=0.3)
        seen: list[dict[str, Any]] = []
        with server.client(key) as c:
            final = follow_job(c, job_id, seen.append, poll_s=0.1, events=use_events)
        assert final["state"] == "succeeded", use_events
        assert len({j["progress"] for j in seen}) >= 3 and seen[-1]["progress"] == 1.0, (use_events, seen)


def test_follow_command_prints_progress_and_the_final_job(server: LiveServer, owner, capsys) -> None:
    from app.cli import main

    owner_id, key = owner
    job_id = _submit(server, owner_id, steps=3, step_s=0.2)
    assert main(["follow", job_id, "--url", server.url, "--api-key", key, "--json"]) == 0
    out, err = capsys.readouterr()
    assert '"state": "succeeded"' in out and f"{job_id}: " in err  # progress lines on stderr (no terminal)
    failed = _submit(server, owner_id, steps=1, step_s=0.0, fail="boom")
    assert main(["follow", failed, "--url", server.url, "--api-key", key]) == 1
    assert "failed: RuntimeError: boom" in capsys.readouterr().out
    assert main(["follow", failed, "--url", server.url, "--api-key", "bz_wrong"]) == 2
    assert "the API key was rejected (401)" in capsys.readouterr().err
    assert main(["follow", "job_nope", "--url", server.url, "--api-key", key]) == 2
    assert "no job 'job_nope' for this API key (404)" in capsys.readouterr().err


def test_progress_lines_name_phase_and_eta(capsys) -> None:
    show = JobProgress("build", bar=False)
    running = {"state": "running", "progress": 0.5, "message": "training: step 5/10 loss 1.0",
               "phase": "training", "eta_s": 75.0}
    show(running)
    show({**running, "progress": 0.6})  # same phase, within every_s: no new line
    show({**running, "progress": 0.9, "message": "evaluating: 5/10 test images", "phase": "evaluating"})
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "training: step 5/10" in err[0] and "(eta 1:15)" in err[0]
    assert "evaluating" in err[1]


def test_demo_with_a_rejected_key_stops_at_once(server: LiveServer, capsys) -> None:
    started = time.monotonic()
    assert run_demo(server.url, "bz_not-a-real-key") == 1
    err = capsys.readouterr().err
    assert "the API key was rejected (401)" in err and "unavailable" not in err
    assert time.monotonic() - started < 10
