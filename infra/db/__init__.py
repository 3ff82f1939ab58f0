"""Persistence: SQLAlchemy 2.0 models and engine/session factories."""

from infra.db.base import Base
from infra.db.models import ApiKey, Block, Dataset, Finetune, Job, Owner, ScoreResult, Search, Zoo
from infra.db.session import make_engine, make_session_factory

__all__ = [
    "ApiKey", "Base", "Block", "Dataset", "Finetune", "Job", "Owner", "ScoreResult", "Search", "Zoo",
    "make_engine", "make_session_factory",
]
