"""Helpers of the service tests: a real uvicorn server on a free port, keys, job polling."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.main import create_app
from app.services import auth
from infra.job_queue import JobQueue
from infra.runtime import Runtime
from infra.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """``create_app(settings)`` served by uvicorn in a thread, over real HTTP on 127.0.0.1."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self._thread = threading.Thread(target=self._server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=60)

    @property
    def runtime(self):  # the lifespan's Runtime: same DB and data dir as the server
        return self.app.state.runtime

    def new_key(self, owner_name: str = "tester") -> str:
        return self.new_owner(owner_name)[1]

    def new_owner(self, owner_name: str = "tester") -> tuple[str, str]:
        """A new owner and its API key: (owner id, key)."""
        with self.runtime.session_factory.begin() as session:
            new = auth.create_owner_with_key(session, self.runtime.secret_key, owner_name=owner_name)
        return new.owner.id, new.plaintext

    def client(self, key: str | None = None, timeout: float = 120.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


class RecordingQueue:
    """A server's own job queue, recording every id handed to it before passing it on."""

    def __init__(self, backend: JobQueue) -> None:
        self.backend, self.name = backend, backend.name
        self.enqueued: list[str] = []

    def enqueue(self, job_id: str) -> None:
        self.enqueued.append(job_id)
        self.backend.enqueue(job_id)

    def check(self) -> None:
        self.backend.check()

    def close(self) -> None:
        self.backend.close()


@contextmanager
def recording_queue(runtime: Runtime) -> Iterator[RecordingQueue]:
    """Watch what reaches ``runtime``'s job backend for the duration of the block."""
    backend = runtime.job_queue
    recording = RecordingQueue(backend)
    runtime.attach_job_queue(recording)
    try:
        yield recording
    finally:
        runtime.attach_job_queue(backend)


def wait_for_job(client: httpx.Client, job_id: str, timeout_s: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['state']} after {timeout_s}s: {job}")
        time.sleep(0.1)


def assert_error(response: httpx.Response, status: int, code: str, *fragments: str) -> dict[str, Any]:
    """The response is our one error shape with this status, code and message fragments."""
    assert response.status_code == status, f"{response.status_code} {response.text}"
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    for fragment in fragments:
        assert fragment in body["error"]["message"], body
    return body["error"]


def service_env(**settings: str) -> dict[str, str]:
    """Environment for a service subprocess (worker, CLI): this checkout importable, settings set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOCKZOO_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update({f"BLOCKZOO_{k.upper()}": v for k, v in settings.items()})
    return env


_QUIET = ["--without-gossip", "--without-mingle", "--without-heartbeat"]


def start_celery_worker(env: dict[str, str], log_path: Path, via: str = "celery") -> subprocess.Popen[bytes]:
    """A real worker process (solo pool: one job at a time, like a GPU worker).

    ``via="celery"``: ``celery -A worker worker``; ``via="blockzoo"``: the ``blockzoo worker`` command.
    """
    if via == "celery":
        command = ["-m", "celery", "-A", "worker", "worker", "--pool=solo", "--loglevel=INFO", "-Q", "blockzoo",
                   *_QUIET]
    else:
        command = ["-m", "app.cli", "worker", "--pool", "solo", "--", *_QUIET]
    log = open(log_path, "wb")
    return subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)



def wait_until_healthy(url: str, proc: subprocess.Popen[bytes], log: Path | None = None,
                       timeout_s: float = 120.0) -> httpx.Response:
    """Poll ``url``/health until the server process answers 200; fail with its log if it exits or stalls."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            response = httpx.get(f"{url}/health", timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        output = log.read_text(errors="replace") if log else "(no log)"
        assert proc.poll() is None, f"the server exited: {output}"
        assert time.monotonic() < deadline, f"the server did not answer /health in {timeout_s} s: {output}"
        time.sleep(0.2)

def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
