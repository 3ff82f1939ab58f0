"""Persistence: SQLAlchemy 2.0 models and engine/session factories."""

from app.db.base import Base
from app.db.models import ApiKey, Block, Dataset, Finetune, Job, Owner, ScoreResult, Search, Zoo
from app.db.session import make_engine, make_session_factory

__all__ = [
    "ApiKey", "Base", "Block", "Dataset", "Finetune", "Job", "Owner", "ScoreResult", "Search", "Zoo",
    "make_engine", "make_session_factory",
]
