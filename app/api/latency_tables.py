"""Latency tables: upload one measured on the target device, or have a worker measure one; list, read, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from app.api.deps import OwnerDep, RuntimeDep, SessionDep
from app.errors import InvalidInput, PayloadTooLarge
from app.middleware.body_limit import streams_its_body
from app.schemas.common import Page, errors
from app.schemas.jobs import JobOut
from app.schemas.latency_tables import LatencyMeasureRequest, LatencyTableCreated, LatencyTableDetail, LatencyTableOut
from app.services import latency_tables as latency_service

router = APIRouter(prefix="/latency-tables", tags=["latency"])

TableId = Annotated[str, Path(examples=["lat_4e1d2c3b4a5f6e7d8c9b"])]

_TABLE_BODY = {
    "required": True,
    "content": {"application/json": {
        "schema": {"type": "object", "description": "The file `blockzoo latency measure --out table.json` wrote."},
        "example": {"format": "blockzoo-latency-table", "version": 2, "space": {"name": "mbv3-tiny", "...": "..."},
                    "in_channels": 1, "num_classes": 10, "batch_size": 1, "device": "cpu",
                    "timing": {"warmup": 5, "repeats": 5, "rounds": 5, "statistic": "min", "clock": "wall"},
                    "scale": 1.31, "prefix_ms": 0.11, "head_ms": 0.09,
                    "blocks": {"s1": {"2": 0.05, "4": 0.06, "...": 0.1}, "...": {}}},
    }},
}


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    too_large = PayloadTooLarge(f"latency table larger than the limit of {limit} bytes (the server's "
                                "max_latency_table_bytes); a complete table of the presets is well below it",
                                details={"max_latency_table_bytes": limit})
    if length and length.isdigit() and int(length) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    if not size:
        raise InvalidInput("empty body; send the table's JSON (the file `blockzoo latency measure` wrote) as the body")
    return b"".join(chunks)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=LatencyTableOut,
             responses=errors(400, 401, 413, 422), openapi_extra={"requestBody": _TABLE_BODY})
@streams_its_body
async def upload_latency_table(request: Request, owner: OwnerDep, session: SessionDep, runtime: RuntimeDep,
                               name: Annotated[str | None, Query(max_length=200)] = None) -> LatencyTableOut:
    """Upload a latency table measured on the target device with `blockzoo latency measure` (docs/latency.md).

    Example: `curl -H "Authorization: Bearer $KEY" -H "Content-Type: application/json"
    --data-binary @table.json http://127.0.0.1:8000/v1/latency-tables`. The table must hold every
    candidate block of its space, the prefix and the head, with positive finite latencies; a table
    that does not fit its space (missing or foreign blocks, wrong shapes, unknown version) is a 422
    that says why.
    """
    raw = await _read_body(request, runtime.settings.max_latency_table_bytes)
    row = await run_in_threadpool(latency_service.upload, session, runtime, owner, raw, name)
    return LatencyTableOut.model_validate(row)


@router.post("/measure", status_code=status.HTTP_202_ACCEPTED, response_model=LatencyTableCreated,
             responses=errors(401, 422))
def measure_latency_table(owner: OwnerDep, session: SessionDep, body: LatencyMeasureRequest) -> LatencyTableCreated:
    """Measure a table on a worker's own device: a `measure_latency` job times every block of the space.

    The table is `measuring` until the job is done, then `ready`. A Celery deployment sends these
    jobs to the queue `BLOCKZOO_LATENCY_QUEUE`, so that a worker on the target device takes them.
    """
    row, job = latency_service.measure(session, owner, body)
    return LatencyTableCreated(table=LatencyTableOut.model_validate(row), job=JobOut.model_validate(job))


@router.get("", response_model=Page[LatencyTableOut], responses=errors(401))
def list_latency_tables(
    owner: OwnerDep, session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[LatencyTableOut]:
    """Your latency tables, newest first."""
    items, total = latency_service.list_page(session, owner, limit, offset)
    return Page(items=[LatencyTableOut.model_validate(t) for t in items], total=total, limit=limit, offset=offset)


@router.get("/{table_id}", response_model=LatencyTableDetail, responses=errors(401, 404))
def get_latency_table(owner: OwnerDep, session: SessionDep, runtime: RuntimeDep, table_id: TableId,
                      include_table: Annotated[bool, Query(description="Include the table itself.")] = False,
                      ) -> LatencyTableDetail:
    """One latency table: where it was measured, its calibration, and its range of predicted latency."""
    row = latency_service.get(session, owner, table_id)
    return LatencyTableDetail(**latency_service.view(runtime, row, with_table=include_table))


@router.delete("/{table_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses=errors(401, 404, 409))
def delete_latency_table(owner: OwnerDep, session: SessionDep, runtime: RuntimeDep, table_id: TableId) -> Response:
    """Delete a latency table (409 while it is measured); finished searches keep their numbers."""
    latency_service.delete(session, runtime, owner, table_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
