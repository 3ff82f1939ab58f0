"""A job's event stream: its view whenever it changes, heartbeats, and its final state.

Server-sent events (``text/event-stream``), one stream per job and client:

- ``event: job`` with the job's JSON view (``JobOut``: state, progress, message, phase, eta_s,
  result, ...) each time something but the estimate changed, the first one at once;
- a comment line (``: heartbeat``) after ``HEARTBEAT_INTERVAL_S`` without an event, so that
  proxies and clients see the connection alive;
- ``event: end`` with the final view once the job finished (succeeded, failed, cancelled, or
  deleted with its zoo: ``{"id", "state": "deleted"}``); the stream then closes;
- ``event: reconnect`` once the stream has lasted ``MAX_STREAM_S``: it closes, and the client
  opens a new one (each stream starts with the current view, so nothing is missed).

The stream is an async generator: between polls it sleeps on the event loop, and each poll is
one short read in the thread pool, so a waiting client holds no thread.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.schemas.jobs import JobOut
from infra.db.errors import is_unavailable
from infra.db.models import Job
from infra.repositories import jobs as jobs_repo
from infra.repositories.common import get_owned

POLL_INTERVAL_S = 0.5       # the job row is read this often (progress is written at most twice a second)
HEARTBEAT_INTERVAL_S = 15.0
MAX_STREAM_S = 3600.0       # then the client reconnects: no stream outlives a deploy by much
RETRY_MS = 2000             # how long an EventSource waits before it reconnects

# Fields that change without news: the estimate moves with the clock, heartbeats with liveness.
_VOLATILE = ("eta_s", "heartbeat_at", "updated_at")


def read_view(factory: sessionmaker[Session], owner_id: str, job_id: str) -> dict[str, Any] | None:
    """The owner's job as the API shows it (JSON-ready), or None when it is not theirs or gone."""
    with factory() as session:
        job = get_owned(session, Job, owner_id, job_id)
        return None if job is None else JobOut.model_validate(job).model_dump(mode="json")


def format_event(name: str, data: dict[str, Any], event_id: int | None = None) -> str:
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


def _news(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k not in _VOLATILE}


async def stream(factory: sessionmaker[Session], owner_id: str, job_id: str, first: dict[str, Any], *,
                 poll_s: float, heartbeat_s: float, max_s: float) -> AsyncIterator[str]:
    """The event stream of one job, starting from its view ``first`` (see the module docstring)."""
    yield f"retry: {RETRY_MS}\n\n"
    started = last_sent = time.monotonic()
    view: dict[str, Any] | None = first
    sent: dict[str, Any] | None = None
    count = 0
    while True:
        now = time.monotonic()
        if view is None:  # deleted while followed (its zoo was deleted)
            yield format_event("end", {"id": job_id, "state": "deleted"})
            return
        if _news(view) != sent:
            count += 1
            sent, last_sent = _news(view), now
            yield format_event("job", view, count)
        if view["state"] in jobs_repo.TERMINAL:
            yield format_event("end", view)
            return
        if now - started >= max_s:
            yield format_event("reconnect", {"id": job_id, "reason": f"streams last at most {max_s:g} s; "
                                             "open a new one to keep following the job"})
            return
        if now - last_sent >= heartbeat_s:
            last_sent = now
            yield ": heartbeat\n\n"
        await asyncio.sleep(poll_s)
        try:
            view = await run_in_threadpool(read_view, factory, owner_id, job_id)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            # The database is away for a moment: the stream stays (heartbeats) and reads again.
