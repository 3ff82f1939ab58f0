"""Alembic is the only way the schema is made: upgrade, model parity and downgrade on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from infra.db import make_engine
from infra.db.base import Base
from infra.db.migrate import downgrade, upgrade

pytest_plugins = ["service_fixtures"]

TABLES = {"owners", "api_keys", "datasets", "zoos", "blocks", "jobs", "score_results", "searches"}


def _upgrade_compare_downgrade(url: str) -> None:
    engine = make_engine(url)
    try:
        upgrade(engine)
        assert TABLES <= set(inspect(engine).get_table_names())

        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "render_as_batch": conn.dialect.name == "sqlite"}
            )
            diff = compare_metadata(context, Base.metadata)
        assert diff == [], f"models and migrations disagree; autogenerate would emit: {diff}"

        downgrade(engine)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(engine)  # and back up again: downgrade left nothing behind that blocks it
        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_sqlite_upgrade_matches_models_and_downgrades(sqlite_url: str) -> None:
    _upgrade_compare_downgrade(sqlite_url)


def test_postgres_upgrade_matches_models_and_downgrades(pg_url: str) -> None:
    _upgrade_compare_downgrade(pg_url)
