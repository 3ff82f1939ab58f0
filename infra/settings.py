"""Service settings: one pydantic-settings class, read from ``BLOCKZOO_*`` environment variables.

``DATABASE_URL``, ``REDIS_URL`` and ``JOB_BACKEND`` are accepted as aliases because container
platforms and compose files conventionally set those plain names.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GiB = 1024**3


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BLOCKZOO_", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(
        default=Path("./data"),
        description="Root of every artifact: dataset stores, zoos (reference weights, blocks), uploads, "
        "and the SQLite database in embedded mode.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("BLOCKZOO_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL; default: SQLite file <data_dir>/blockzoo.db.",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("BLOCKZOO_REDIS_URL", "REDIS_URL"),
        description="Celery broker (job_backend=celery only).",
    )
    job_backend: Literal["local", "celery"] = Field(
        default="local",
        validation_alias=AliasChoices("BLOCKZOO_JOB_BACKEND", "JOB_BACKEND"),
        description="'local': in-process thread pool (embedded default); 'celery': Redis + `blockzoo worker`.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str | None = Field(
        default=None,
        description="HMAC key for API-key digests; default: generated once into <data_dir>/secret_key.",
    )
    max_upload_bytes: int = Field(default=2 * GiB, gt=0, description="Largest accepted upload (413 above).")
    max_expanded_bytes: int = Field(
        default=8 * GiB, gt=0, description="Largest decoded dataset an upload may expand to (archives)."
    )
    local_workers: int = Field(default=1, ge=1, description="Threads of the local job backend.")
    torch_threads: int | None = Field(
        default=None, ge=1, description="CPU threads torch uses for jobs (default: torch's, one per core); "
        "1 avoids thread over-subscription when jobs share the CPU with other work.",
    )
    max_wait_s: float = Field(default=60.0, ge=0, description="Upper bound of the `wait` request field.")
    job_time_limit_s: int = Field(
        default=6 * 3600, gt=0, description="Longest job; the broker visibility timeout is set above it."
    )
    worker_max_tasks_per_child: int | None = Field(
        default=None, description="Celery prefork: recycle a child after N jobs (1 frees GPU memory per job)."
    )
    auto_migrate: bool = Field(default=True, description="Run `alembic upgrade head` when the API starts.")
    log_level: str = "info"

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @cached_property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'blockzoo.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def embedded(self) -> bool:
        """Single-process mode: SQLite and the in-process job backend."""
        return self.is_sqlite and self.job_backend == "local"

    @property
    def visibility_timeout_s(self) -> int:
        # Redis re-delivers an unacked (acks_late) task after this long: it must exceed the
        # longest job, or a healthy long job would run twice.
        return self.job_time_limit_s + 3600

    def resolved_secret_key(self) -> str:
        """The configured key, else one generated once and kept (mode 600) in the data dir."""
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret_key"
        if not path.exists():
            import os
            import secrets

            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".secret_key.{os.getpid()}")
            tmp.write_text(secrets.token_urlsafe(48))
            tmp.chmod(0o600)
            try:
                os.link(tmp, path)  # fails if another process won the race: both then read its key
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        return path.read_text().strip()
