"""Following a job from a client (``blockzoo follow``, ``blockzoo demo``): its event stream,
with polling as the fallback, and a progress bar or progress lines to show it.

:func:`follow_job` reads ``GET /v1/jobs/{id}/events`` (server-sent events; it reopens the stream
on ``event: reconnect``) and falls back to polling ``GET /v1/jobs/{id}`` when the stream is not
available (an older server, a proxy that buffers) or breaks. Only httpx: an example client.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

import httpx

TERMINAL = ("succeeded", "failed", "cancelled")
Job = dict[str, Any]
OnUpdate = Callable[[Job], None]


class FollowError(Exception):
    """The server refused to show the job (a rejected key, an unknown job): no fallback helps."""


def error_text(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{error['code']}: {error['message']}"
    except Exception:
        return f"HTTP {response.status_code}"


def follow_job(client: httpx.Client, job_id: str, on_update: OnUpdate = lambda job: None, *,
               poll_s: float = 1.0, events: bool = True) -> Job:
    """Follow job ``job_id`` until it ends; ``on_update(job)`` hears every new view. Returns the final view."""
    if events:
        try:
            final = _follow_events(client, job_id, on_update)
            if final is not None:
                return final
        except (httpx.TransportError, ValueError):
            pass  # a broken stream: polling goes on from the current state
    return _follow_by_polling(client, job_id, on_update, poll_s)


def _refuse(response: httpx.Response, job_id: str) -> None:
    if response.status_code == 401:
        raise FollowError(f"the API key was rejected (401): {error_text(response)}")
    if response.status_code == 404:
        raise FollowError(f"no job {job_id!r} for this API key (404)")


def _follow_events(client: httpx.Client, job_id: str, on_update: OnUpdate) -> Job | None:
    """The final view from the event stream; None when the stream is not there or ends early."""
    # No read timeout shorter than the heartbeat interval (15 s): a quiet job is not a dead server.
    timeout = httpx.Timeout(10.0, read=60.0)
    while True:
        with client.stream("GET", f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"},
                           timeout=timeout) as response:
            if response.status_code != 200:
                response.read()
                if response.status_code == 401:
                    _refuse(response, job_id)
                return None  # e.g. a server without the stream (404): polling tells a missing job apart
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                return None
            reconnect = False
            for name, data in parse_events(response.iter_lines()):
                if name == "job":
                    on_update(data)
                elif name == "end":
                    return data
                elif name == "reconnect":
                    reconnect = True
                    break
            if not reconnect:
                return None


def parse_events(lines: Iterable[str]) -> Iterator[tuple[str, Job]]:
    """``(event name, JSON data)`` per server-sent event; comments (heartbeats) and retries are skipped."""
    name, data = "message", []
    for line in lines:
        if not line:
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)


def _follow_by_polling(client: httpx.Client, job_id: str, on_update: OnUpdate, poll_s: float) -> Job:
    last: Job | None = None
    while True:
        response = client.get(f"/v1/jobs/{job_id}")
        _refuse(response, job_id)
        response.raise_for_status()
        job = response.json()
        if last is None or _news(job) != _news(last):
            on_update(job)
        last = job
        if job["state"] in TERMINAL:
            return job
        time.sleep(poll_s)


def _news(job: Job) -> Job:
    return {k: v for k, v in job.items() if k not in ("eta_s", "heartbeat_at", "updated_at")}


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds}s"


class JobProgress:
    """Shows a followed job: a bar on a terminal, else a line per phase (and one every ``every_s``).

    Use as ``on_update``; ``close()`` ends the bar.
    """

    def __init__(self, label: str, file: TextIO | None = None, bar: bool | None = None,
                 every_s: float = 10.0) -> None:
        self.label, self.file, self.every_s = label, file or sys.stderr, every_s
        self._bar: Any = None
        self._use_bar = self.file.isatty() if bar is None else bar
        self._phase: object = object()
        self._printed = 0.0

    def __call__(self, job: Job) -> None:
        where = job.get("phase") or job["state"]
        text = f"{job['message']} (eta {_eta(job.get('eta_s'))})" if job["state"] == "running" else job["message"]
        if self._use_bar:
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=1.0, desc=self.label, file=self.file, dynamic_ncols=True, leave=True,
                                 bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")
            self._bar.update(max(0.0, job["progress"] - self._bar.n))
            self._bar.set_postfix_str(text[:80], refresh=True)
            return
        now = time.monotonic()
        if where != self._phase or now - self._printed >= self.every_s or job["state"] in TERMINAL:
            self._phase, self._printed = where, now
            print(f"  {self.label}: {job['state']:<9} {job['progress'] * 100:5.1f}%  {text}"[:120],
                  file=self.file, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> JobProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
