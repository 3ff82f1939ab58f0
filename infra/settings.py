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


def default_data_dir() -> Path:
    """The per-user data folder (XDG): every command finds the same one, from any directory."""
    import os

    base = os.environ.get("XDG_DATA_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".local" / "share") / "blockzoo"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BLOCKZOO_", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Root of every artifact: dataset stores, zoos (reference weights, blocks), uploads, "
        "and the SQLite database in embedded mode. Default: the per-user data folder, "
        "$XDG_DATA_HOME/blockzoo (~/.local/share/blockzoo), the same whatever the working directory.",
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
        default=None, ge=1, description="CPU threads torch uses for each job (default: $OMP_NUM_THREADS, else "
        "cores // (job slots + 1): blockzoo.threads).",
    )
    max_wait_s: float = Field(default=60.0, ge=0, description="Upper bound of the `wait` request field.")
    max_latency_table_bytes: int = Field(
        default=4 * 1024**2, gt=0, description="Largest accepted latency-table upload (413 above).")
    latency_queue: str | None = Field(
        default=None, description="Celery queue of the jobs that measure latency tables (POST "
        "/v1/latency-tables/measure), so that a worker on the target device takes them, e.g. `latency-jetson` "
        "with `blockzoo worker --queues latency-jetson` there; default: the common queue.")
    # Limits against runaway or hostile clients (docs/reliability.md, "Hostile input and limits").
    # The defaults are far above what one person using the embedded server does.
    max_json_body_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Largest request body outside uploads (413 above); uploads "
        "are capped by max_upload_bytes.",
    )
    max_running_jobs_per_owner: int = Field(
        default=16, ge=1, description="Jobs one owner may have running at once; a submit past it is a 429.",
    )
    max_queued_jobs_per_owner: int = Field(
        default=500, ge=1, description="Jobs one owner may have waiting (queued); a submit past it is a 429.",
    )
    rate_limit_per_s: float = Field(
        default=10.0, ge=0, description="Expensive requests (scores, cost, zoo/search/finetune/dataset "
        "creation, weights) one API key may make per second, sustained; 0 turns the limit off.",
    )
    rate_limit_burst: int = Field(
        default=300, ge=1, description="Expensive requests one API key may make at once before "
        "rate_limit_per_s applies (429 with Retry-After past it).",
    )
    max_search_evaluations: int = Field(
        default=20_000, ge=1, description="Largest search: population × (generations + 1), or "
        "max_evaluations if lower (422 above).",
    )
    max_train_epochs: float = Field(
        default=300.0, gt=0, description="Most epochs a reference training or a fine-tune may ask for (422 above).",
    )
    max_cost_layers: int = Field(
        default=20_000, ge=1, description="POST /v1/cost: most layers of distinct blocks one request may "
        "cost, about 1 CPU-s (every preset architecture together has fewer; 422 above).",
    )
    orphan_file_age_s: float = Field(
        default=3600.0, ge=0, description="At start, files of interrupted uploads and temporary block files "
        "older than this are deleted.",
    )
    score_memory_bytes: int = Field(
        default=256 * 1024**2, ge=0, description="A job keeps at most this many bytes of loaded zoo blocks "
        "(least recently used go first; they are read again from disk when needed). With blocks distilled "
        "64 at a time, this bounds a scoring worker's memory whatever the number of architectures.",
    )
    job_time_limit_s: int = Field(
        default=6 * 3600, gt=0, description="Longest job; the broker visibility timeout is set above it."
    )
    worker_max_tasks_per_child: int | None = Field(
        default=None, description="Celery prefork: recycle a child after N jobs (1 frees GPU memory per job)."
    )
    heartbeat_interval_s: float = Field(
        default=5.0, gt=0, description="A running job's worker writes its heartbeat this often (docs/reliability.md)."
    )
    heartbeat_timeout_s: float = Field(
        default=60.0, gt=0, description="A running job whose heartbeat is older than this has lost its worker: "
        "the reaper re-queues it (or fails it after job_max_attempts).",
    )
    job_max_attempts: int = Field(
        default=3, ge=1, description="Runs a job may start; one that lost its worker this often is failed with the reason."
    )
    reaper_interval_s: float = Field(
        default=15.0, ge=0, description="How often a Celery worker (and the API, celery backend) looks for jobs "
        "that lost their worker; 0: only when the API starts.",
    )
    job_db_retry_s: float = Field(
        default=300.0, ge=0, description="A job that loses the database retries with backoff this long, then "
        "stops and is left to the reaper.",
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
        # Redis re-delivers an unacked (acks_late) task after this long. Lost jobs do not wait for
        # it (the reaper re-sends them); it stays above the longest job so that a healthy job's
        # message is not delivered again while it runs (that delivery would only exit at once).
        return self.job_time_limit_s + 3600

    @property
    def cancel_orphan_after_s(self) -> float:
        """A cancel takes effect at once on a running job whose heartbeat is older than this.

        Shorter than ``heartbeat_timeout_s``: ending a live job by mistake is harmless (its run
        loses ownership and stops at its next safe point), while a user waiting on a cancel is not.
        """
        return min(self.heartbeat_timeout_s, 3 * self.heartbeat_interval_s)

    def job_threads(self, slots: int | None = None) -> int:
        """Torch threads per job: ``torch_threads``, else the rule of ``blockzoo.threads`` for
        ``slots`` concurrent jobs (default: ``local_workers``, the embedded server's slots)."""
        from blockzoo.threads import default_threads

        return self.torch_threads or default_threads(slots or self.local_workers)

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
