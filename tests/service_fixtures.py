"""Fixtures of the service tests: real databases, real Redis, real servers. No mocks.

Loaded with ``pytest_plugins = ["service_fixtures"]`` from the service test modules so that it
does not collide with the core's fixtures in a shared conftest.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_ADMIN_URL = os.environ.get("BLOCKZOO_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_TEST_URL = os.environ.get("BLOCKZOO_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def _pg_admin_engine():
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'blockzoo.db'}"


def _fresh_pg_database() -> Iterator[str]:
    admin = _pg_admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # pragma: no cover - depends on the machine
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    name = f"blockzoo_test_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _fresh_redis_db() -> Iterator[str]:
    import redis

    db = 1 + secrets.randbelow(15)
    url = f"{REDIS_TEST_URL}/{db}"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"Redis not reachable at {url}: {exc}")
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    yield from _fresh_pg_database()


@pytest.fixture(scope="module")
def pg_url_module() -> Iterator[str]:
    """Like ``pg_url``, shared by the tests of one module."""
    yield from _fresh_pg_database()


@pytest.fixture(scope="module")
def redis_url_module() -> Iterator[str]:
    """A Redis database other than 0 (a random one of 1-15), flushed before and after."""
    yield from _fresh_redis_db()


@pytest.fixture(scope="module", autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    """Service tests run local jobs with BLOCKZOO_TORCH_THREADS=1 in this process; undo that after."""
    import sys

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch else None
    yield
    torch = sys.modules.get("torch")
    if torch is not None and before is not None:
        torch.set_num_threads(before)
