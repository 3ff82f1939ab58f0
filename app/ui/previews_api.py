"""Preview endpoints of a dataset: its class counts and a grid of sample images (owner-scoped)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from app.api.deps import OwnerDep, RuntimeDep, SessionDep
from app.schemas.common import errors
from app.services import datasets as datasets_service
from app.ui import previews
from blockzoo.data import DatasetStore, open_store
from infra.db.models import Owner
from infra.runtime import Runtime

router = APIRouter(prefix="/datasets", tags=["datasets"])

DatasetId = Annotated[str, Path(examples=["ds_0b4f6c2e9a1d3e5f7a8b"])]


class ClassCount(BaseModel):
    index: int = Field(description="The label value used in training (0..K-1).")
    name: str
    train: int = Field(description="Images of this class in the training split.")
    test: int = Field(description="Images of this class in the test split.")


class ClassCounts(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "dataset_id": "ds_0b4f6c2e9a1d3e5f7a8b",
        "classes": [{"index": 0, "name": "0", "train": 148, "test": 30}, {"index": 1, "name": "1", "train": 152,
                                                                            "test": 30}],
    }]})

    dataset_id: str
    classes: list[ClassCount]


def _store(session: Session, runtime: Runtime, owner: Owner, dataset_id: str) -> DatasetStore:
    dataset = datasets_service.get(session, owner, dataset_id)  # 404 unless it is the owner's
    return open_store(runtime.storage.resolve(dataset.path))


@router.get("/{dataset_id}/class-counts", response_model=ClassCounts, responses=errors(401, 404))
def get_dataset_class_counts(owner: OwnerDep, session: SessionDep, runtime: RuntimeDep,
                             dataset_id: DatasetId) -> ClassCounts:
    """How many training and test images each class has."""
    store = _store(session, runtime, owner, dataset_id)
    return ClassCounts(dataset_id=dataset_id, classes=[ClassCount(**c) for c in previews.class_counts(store)])


@router.get("/{dataset_id}/samples.png", response_class=Response,
            responses={200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
                             "description": "One row per class (in class order), `per_class` images each."},
                       **errors(401, 404, 422)})
def get_dataset_samples(
    owner: OwnerDep, session: SessionDep, runtime: RuntimeDep, dataset_id: DatasetId,
    per_class: Annotated[int, Query(ge=1, le=16, description="Images per class (columns).")] = 8,
    max_classes: Annotated[int, Query(ge=1, le=100, description="Classes shown (rows), the first ones.")] = 10,
    cell: Annotated[int, Query(ge=8, le=96, description="Pixels per image side; rows are cell + 2 apart.")] = 32,
) -> Response:
    """A grid of training images, one row per class, the same images every time (seeded)."""
    store = _store(session, runtime, owner, dataset_id)
    png = previews.sample_grid_png(store, per_class, max_classes, cell)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
