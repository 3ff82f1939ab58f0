"""Fine-tunes."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from infra.db.models import Finetune


def add(session: Session, finetune: Finetune) -> Finetune:
    session.add(finetune)
    return finetune


def get(session: Session, finetune_id: str) -> Finetune | None:
    return session.get(Finetune, finetune_id, populate_existing=True)


def list_for_owner(owner_id: str, zoo_id: str | None = None) -> Select[tuple[Finetune]]:
    query = select(Finetune).where(Finetune.owner_id == owner_id).order_by(Finetune.created_at.desc(), Finetune.id)
    if zoo_id:
        query = query.where(Finetune.zoo_id == zoo_id)
    return query


def set_result(session: Session, finetune_id: str, result: dict, path: str, content_hash: str) -> None:
    finetune = get(session, finetune_id)
    if finetune is None:
        raise LookupError(f"fine-tune {finetune_id!r} no longer exists")
    finetune.result, finetune.path, finetune.content_hash = result, path, content_hash


def delete(session: Session, finetune: Finetune) -> None:
    session.delete(finetune)
