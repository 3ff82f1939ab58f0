"""A PostgreSQL cluster and a Redis server of the test's own, for tests that stop and restart them.

The machine's shared services are never stopped: an outage test starts its private instance on a
free loopback port in a temporary directory, cuts it, brings it back on the same port, and
removes it at the end. PostgreSQL refuses to run as root, so as root it runs as ``postgres``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from service_helpers import free_port


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"PostgreSQL's {name} is not installed")
    return path


class PrivatePostgres:
    """``initdb`` into a temporary directory; :meth:`start` / :meth:`stop` on one port."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="blockzoo-pg-"))
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
        self._run(_pg_bin("initdb"), "-D", str(self.root / "data"), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        self._run(_pg_bin("pg_ctl"), "-D", str(self.root / "data"), "-o", options, "-w", "-t", "60",
                  "-l", str(self.root / "log"), "start")

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as when the database goes away."""
        self._run(_pg_bin("pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """``redis-server`` on a free loopback port, nothing persisted; :meth:`stop` kills it, :meth:`start` again."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.root = Path(tempfile.mkdtemp(prefix="blockzoo-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.root)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    raise RuntimeError("the private redis-server did not start") from None
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=20)
        self._proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
