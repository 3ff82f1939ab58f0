"""Datasets."""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from infra.db.models import Dataset, Zoo


def add(session: Session, dataset: Dataset) -> Dataset:
    session.add(dataset)
    return dataset


def get(session: Session, dataset_id: str) -> Dataset | None:
    return session.get(Dataset, dataset_id)


def list_for_owner(owner_id: str) -> Select[tuple[Dataset]]:
    return select(Dataset).where(Dataset.owner_id == owner_id).order_by(Dataset.created_at.desc(), Dataset.id)


def zoo_ids_using(session: Session, dataset_id: str) -> list[str]:
    return list(session.scalars(select(Zoo.id).where(Zoo.dataset_id == dataset_id)))


def count_with_hash(session: Session, content_hash: str) -> int:
    return session.scalar(select(func.count()).select_from(Dataset).where(Dataset.content_hash == content_hash)) or 0


def delete(session: Session, dataset: Dataset) -> None:
    session.delete(dataset)
