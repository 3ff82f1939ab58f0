"""Datasets: import a built-in or an upload into a content-addressed store, list, delete.

Imports run in the request (they are I/O bound and give the reader's error synchronously, as a
400); the store itself is written by ``blockzoo.data``, atomically, under ``datasets/<hash>/``.
Two owners importing the same content share one store; it is removed with its last row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.services.uploads import ReceivedUpload
from infra.after_commit import on_commit
from infra.db.base import new_id
from infra.db.models import Dataset, Owner
from infra.repositories import datasets as datasets_repo
from infra.repositories.common import get_owned, paginate
from infra.runtime import Runtime


def builtins() -> list[dict[str, Any]]:
    from blockzoo.data import BUILTIN_DATASETS

    return [{"name": d.name, "description": d.description, "options": dict(d.options)}
            for d in BUILTIN_DATASETS.values()]


def _row(owner: Owner, info: Any, storage_path: str, source: str, upload_bytes: int | None,
         name: str | None = None) -> Dataset:
    return Dataset(
        id=new_id("ds"), owner_id=owner.id, name=(name or info.name)[:200], source=source, format=info.format,
        content_hash=info.content_hash, path=storage_path, num_train=info.num_train, num_test=info.num_test,
        num_classes=info.num_classes, class_names=list(info.class_names), image_shape=list(info.image_shape),
        upload_bytes=upload_bytes,
    )


def _added(session: Session, dataset: Dataset) -> Dataset:
    datasets_repo.add(session, dataset)
    session.flush()  # the response shows the row as stored (created_at); the request commits it
    return dataset


def import_builtin(session: Session, runtime: Runtime, owner: Owner, name: str, options: dict[str, Any],
                   seed: int) -> Dataset:
    from blockzoo.data import DatasetError, import_builtin as core_import

    try:
        info = core_import(name, runtime.storage.datasets_dir, seed=seed, **options)
    except DatasetError as exc:
        raise InvalidInput(str(exc)) from None
    return _added(session, _row(owner, info, runtime.storage.relative(info.path), "builtin", None))


def import_upload(session: Session, runtime: Runtime, owner: Owner, upload: ReceivedUpload) -> Dataset:
    from blockzoo.data import DatasetError, import_file

    try:
        info = import_file(
            upload.path, runtime.storage.datasets_dir, filename=upload.filename,
            format=upload.fields.get("format") or None, name=upload.fields.get("name") or None,
            max_expanded_bytes=runtime.settings.max_expanded_bytes,
        )
    except DatasetError as exc:
        raise InvalidInput(str(exc), details={"filename": upload.filename}) from None
    finally:
        upload.path.unlink(missing_ok=True)
    return _added(session, _row(owner, info, runtime.storage.relative(info.path), "upload", upload.size))


def list_page(session: Session, owner: Owner, limit: int, offset: int) -> tuple[list[Dataset], int]:
    return paginate(session, datasets_repo.list_for_owner(owner.id), limit, offset)


def get(session: Session, owner: Owner, dataset_id: str) -> Dataset:
    dataset = get_owned(session, Dataset, owner.id, dataset_id)
    if dataset is None:
        raise NotFound(f"no dataset {dataset_id!r}; GET /v1/datasets lists yours")
    return dataset


def delete(session: Session, runtime: Runtime, owner: Owner, dataset_id: str) -> None:
    dataset = get(session, owner, dataset_id)
    zoos = datasets_repo.zoo_ids_using(session, dataset.id)
    if zoos:
        raise Conflict(f"dataset {dataset_id!r} is used by zoo(s) {', '.join(zoos)}; delete them first",
                       details={"zoo_ids": zoos})
    content_hash, path = dataset.content_hash, dataset.path
    datasets_repo.delete(session, dataset)
    on_commit(session, lambda: _remove_store_if_unused(runtime, content_hash, path))


def _remove_store_if_unused(runtime: Runtime, content_hash: str, path: str) -> None:
    """Once the row is gone: the shared store goes with the last dataset that used it."""
    with runtime.session_factory() as session:
        if datasets_repo.count_with_hash(session, content_hash) == 0:
            runtime.storage.remove_tree(path)
