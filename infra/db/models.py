"""The schema. Migrations in ``migrations/`` create it; a test checks the two agree.

Artifacts (dataset stores, reference weights, distilled blocks, exports, fine-tuned weights) live
in the data directory; rows hold their content hash and their path relative to the data directory.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from infra.db.base import Base, utcnow


class Owner(Base):
    """A tenant: every dataset, zoo, job and search belongs to one owner and is invisible to others."""

    __tablename__ = "owners"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An API key, stored as an HMAC digest; ``prefix`` is the readable start shown in listings."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    owner: Mapped[Owner] = relationship(lazy="joined")


class Dataset(Base):
    """A normalised dataset store (``datasets/<content_hash>/``) as seen by one owner."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))  # "builtin" | "upload"
    format: Mapped[str] = mapped_column(String(32))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(String(512))
    num_train: Mapped[int] = mapped_column(Integer)
    num_test: Mapped[int] = mapped_column(Integer)
    num_classes: Mapped[int] = mapped_column(Integer)
    class_names: Mapped[list[Any]]
    image_shape: Mapped[list[Any]]  # [H, W, C]
    upload_bytes: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Zoo(Base):
    """A block zoo: a trained reference and the candidate blocks distilled from it (``zoos/<id>/``)."""

    __tablename__ = "zoos"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="RESTRICT"), index=True)
    space_name: Mapped[str] = mapped_column(String(64))
    space: Mapped[dict[str, Any]]  # the full definition, so custom spaces survive preset changes
    build: Mapped[str] = mapped_column(String(8))  # "lazy" | "eager"
    reference_recipe: Mapped[dict[str, Any]]
    distill_recipe: Mapped[dict[str, Any]]
    state: Mapped[str] = mapped_column(String(16), default="building")  # building | ready | failed
    error: Mapped[str | None] = mapped_column(Text)
    path: Mapped[str] = mapped_column(String(512))
    reference_hash: Mapped[str | None] = mapped_column(String(64))
    reference_metrics: Mapped[dict[str, Any] | None]
    in_channels: Mapped[int] = mapped_column(Integer)
    num_classes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    dataset: Mapped[Dataset] = relationship(lazy="joined")


class Block(Base):
    """One distilled candidate block of a zoo: stage, block code, metrics, artifact."""

    __tablename__ = "blocks"
    __table_args__ = (UniqueConstraint("zoo_id", "stage", "block"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    zoo_id: Mapped[str] = mapped_column(ForeignKey("zoos.id", ondelete="CASCADE"))
    stage: Mapped[int] = mapped_column(Integer)  # 0-based stage index
    block: Mapped[str] = mapped_column(String(64))  # canonical block code, e.g. "6642"
    content_hash: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str | None] = mapped_column(String(512))
    metrics: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """A unit of background work. The database, not the broker, is the source of truth."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    zoo_id: Mapped[str | None] = mapped_column(ForeignKey("zoos.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]]
    result: Mapped[dict[str, Any] | None]
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Liveness (infra.liveness): the run that owns a running job writes heartbeat_at every few
    # seconds; run_token names that run, so only it may write the job's progress and outcome.
    heartbeat_at: Mapped[datetime | None]
    run_token: Mapped[str | None] = mapped_column(String(32))
    runner: Mapped[str | None] = mapped_column(String(200))  # host, pid namespace and pid of the run


class ScoreResult(Base):
    """A cached metric of one architecture on one zoo: scores are computed once per (zoo, arch, metric)."""

    __tablename__ = "score_results"
    __table_args__ = (UniqueConstraint("zoo_id", "arch_id", "metric"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    zoo_id: Mapped[str] = mapped_column(ForeignKey("zoos.id", ondelete="CASCADE"))
    arch_id: Mapped[str] = mapped_column(String(128))
    metric: Mapped[str] = mapped_column(String(32))
    value: Mapped[float | None] = mapped_column(Float)  # None: not finite (e.g. synflow overflow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Search(Base):
    """A best-under-budget search over a zoo; its picks arrive with its job."""

    __tablename__ = "searches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    zoo_id: Mapped[str] = mapped_column(ForeignKey("zoos.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    request: Mapped[dict[str, Any]]
    result: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Finetune(Base):
    """One architecture of a zoo trained on the zoo's dataset from an initialisation (paper §3).

    ``init`` is ``zoo`` (distilled blocks), ``remap`` (parameter remapping only) or ``scratch``;
    the weights file (``zoos/<zoo_id>/finetunes/<id>.safetensors``) and the accuracies before
    and after arrive with its job.
    """

    __tablename__ = "finetunes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    zoo_id: Mapped[str] = mapped_column(ForeignKey("zoos.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    arch_id: Mapped[str] = mapped_column(String(128))
    init: Mapped[str] = mapped_column(String(16))  # zoo | remap | scratch
    recipe: Mapped[dict[str, Any]]  # the requested TrainRecipe fields; the job's result has them all
    result: Mapped[dict[str, Any] | None]
    path: Mapped[str | None] = mapped_column(String(512))  # the weights, relative to the data directory
    content_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    zoo: Mapped[Zoo] = relationship(lazy="joined")


class Validation(Base):
    """A validation of a zoo: a sample of its architectures trained on its dataset, and how well
    every signal ranks them (docs/validation.md).

    ``plan`` fixes the architectures, seeds and recipe; each (architecture, seed) is a row of
    ``validation_trainings``; ``job_id`` is the job that writes ``report`` (and the plot, a PNG at
    ``plot_path`` in the data directory) once every training is done.
    """

    __tablename__ = "validations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    zoo_id: Mapped[str] = mapped_column(ForeignKey("zoos.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    request: Mapped[dict[str, Any]]
    plan: Mapped[dict[str, Any]]
    report: Mapped[dict[str, Any] | None]
    plot_path: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ValidationTraining(Base):
    """One (architecture, seed) of a validation and its result.

    ``job_id`` is its own ``validation_train`` job; ``trained_by_job_id`` and ``trainer`` (host:pid)
    name the run that trained it; ``trained_count`` counts the runs that trained it to the end for
    this validation (0 when an earlier validation of the zoo had trained it already).
    """

    __tablename__ = "validation_trainings"
    __table_args__ = (UniqueConstraint("validation_id", "arch_id", "seed"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    validation_id: Mapped[str] = mapped_column(ForeignKey("validations.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # order in the plan (seed-major)
    arch_id: Mapped[str] = mapped_column(String(128))
    seed: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending | training | done
    trained_by_job_id: Mapped[str | None] = mapped_column(String(32))
    trainer: Mapped[str | None] = mapped_column(String(200))
    trained_count: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any] | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class LatencyTable(Base):
    """A latency lookup table (``latency_tables/<id>.json``): uploaded, or measured by a job on a worker's device.

    The columns summarise the file (space, shapes, device, machine, calibration scale, the
    fastest and the largest architecture's predicted latency) so that listings and matching a
    zoo need not read it; ``state`` is ``measuring`` until its job wrote the file, then ``ready``
    (or ``failed``).
    """

    __tablename__ = "latency_tables"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))  # "upload" | "measured"
    state: Mapped[str] = mapped_column(String(16), default="ready")  # measuring | ready | failed
    error: Mapped[str | None] = mapped_column(Text)
    space_name: Mapped[str] = mapped_column(String(64))
    space: Mapped[dict[str, Any]]
    in_channels: Mapped[int] = mapped_column(Integer)
    num_classes: Mapped[int] = mapped_column(Integer)
    batch_size: Mapped[int] = mapped_column(Integer)
    request: Mapped[dict[str, Any] | None]  # measured: what was asked (timing, calibration networks)
    device: Mapped[str | None] = mapped_column(String(64))
    machine: Mapped[str | None] = mapped_column(Text)
    torch_version: Mapped[str | None] = mapped_column(String(64))
    blocks: Mapped[int | None] = mapped_column(Integer)
    scale: Mapped[float | None] = mapped_column(Float)
    fastest_ms: Mapped[float | None] = mapped_column(Float)
    largest_ms: Mapped[float | None] = mapped_column(Float)
    path: Mapped[str | None] = mapped_column(String(512))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
