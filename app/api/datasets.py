"""Datasets: built-ins and uploads, normalised once into a content-addressed store."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from app.api.deps import OwnerDep, RuntimeDep, SessionDep
from app.api.rate_limit import RateLimited
from app.schemas.common import Page, PageLimit, PageOffset, errors
from app.schemas.datasets import BuiltinDatasetOut, BuiltinDatasetRequest, DatasetOut
from app.services import datasets as datasets_service
from app.services.uploads import receive_upload

router = APIRouter(prefix="/datasets", tags=["datasets"])

DatasetId = Annotated[str, Path(examples=["ds_0b4f6c2e9a1d3e5f7a8b"])]

_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary",
                             "description": "NPZ, IDX archive, ImageFolder .zip/.tar.gz, "
                                            "or CIFAR-10/100 binary .tar.gz."},
                    "name": {"type": "string", "description": "Display name (default: from the file name).",
                             "examples": ["mnist-subset"]},
                    "format": {"type": "string", "enum": ["npz", "idx", "imagefolder", "cifar-10", "cifar-100"],
                               "description": "Force a reader instead of detecting the format.",
                               "examples": ["npz"]},
                },
            },
            "encoding": {"file": {"contentType": "application/octet-stream"}},
        },
        "application/octet-stream": {
            "schema": {"type": "string", "format": "binary"},
            "example": "(raw file bytes; pass ?filename=data.npz)",
        },
    },
}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetOut,
             responses=errors(400, 401, 413, 422, 429), openapi_extra={"requestBody": _UPLOAD_BODY},
             dependencies=[RateLimited])
async def upload_dataset(
    request: Request, owner: OwnerDep, session: SessionDep, runtime: RuntimeDep,
    # Read by receive_upload for a raw application/octet-stream body (a form sends them as fields).
    filename: Annotated[str | None, Query(description="Raw body: the file's name (its suffix helps the "
                                          "format detection).", examples=["data.npz"])] = None,
    name: Annotated[str | None, Query(description="Raw body: display name.")] = None,
    format_: Annotated[str | None, Query(alias="format", description="Raw body: force a reader (npz, idx, "
                                         "imagefolder, cifar-10, cifar-100).")] = None,
) -> DatasetOut:
    """Upload a dataset file (multipart field `file`, streamed to disk, size-capped) and import it.

    Example: `curl -H "Authorization: Bearer $KEY" -F file=@mnist.zip http://127.0.0.1:8000/v1/datasets`.
    An unreadable file is a 400 whose message says what is wrong and what is accepted.
    """
    upload = await receive_upload(request, runtime.storage, runtime.settings.max_upload_bytes)
    dataset = await run_in_threadpool(datasets_service.import_upload, session, runtime, owner, upload)
    return DatasetOut.model_validate(dataset)


@router.post("/builtin", status_code=status.HTTP_201_CREATED, response_model=DatasetOut,
             responses=errors(400, 401, 422, 429), dependencies=[RateLimited])
def import_builtin_dataset(owner: OwnerDep, session: SessionDep, runtime: RuntimeDep,
                           body: BuiltinDatasetRequest) -> DatasetOut:
    """Import a built-in dataset (digits, fashion-mnist when installed, synthetic)."""
    dataset = datasets_service.import_builtin(session, runtime, owner, body.name, body.options, body.seed)
    return DatasetOut.model_validate(dataset)


@router.get("/builtin", response_model=list[BuiltinDatasetOut], responses=errors(401))
def list_builtin_datasets(_owner: OwnerDep) -> list[BuiltinDatasetOut]:
    """The built-in datasets and their options."""
    return [BuiltinDatasetOut(**d) for d in datasets_service.builtins()]


@router.get("", response_model=Page[DatasetOut], responses=errors(401))
def list_datasets(
    owner: OwnerDep, session: SessionDep,
    limit: PageLimit = 50,
    offset: PageOffset = 0,
) -> Page[DatasetOut]:
    """Your datasets, newest first."""
    items, total = datasets_service.list_page(session, owner, limit, offset)
    return Page(items=[DatasetOut.model_validate(d) for d in items], total=total, limit=limit, offset=offset)


@router.get("/{dataset_id}", response_model=DatasetOut, responses=errors(401, 404))
def get_dataset(owner: OwnerDep, session: SessionDep, dataset_id: DatasetId) -> DatasetOut:
    """One dataset."""
    return DatasetOut.model_validate(datasets_service.get(session, owner, dataset_id))


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses=errors(401, 404, 409))
def delete_dataset(owner: OwnerDep, session: SessionDep, runtime: RuntimeDep, dataset_id: DatasetId) -> Response:
    """Delete a dataset (409 while a zoo uses it); its store goes with the last dataset using it."""
    datasets_service.delete(session, runtime, owner, dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
