"""Latency tables: upload (checked in the request, torch-free), measure (a job on a worker's device),
read, delete; and the table a score or a search asks for, checked against its zoo.

An uploaded table must be complete (every candidate block of its space, the prefix and the
head) and fit its own space; the stored file is the table re-written canonically, not the
uploaded bytes.
"""

from __future__ import annotations

from typing import Any

from blockzoo.latency.table import MAX_BLOCKS, LatencyTableError, count_blocks
from blockzoo.latency.table import LatencyTable as LookupTable
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidSpace, NotFound, ServiceError
from app.schemas.latency_tables import LatencyMeasureRequest
from app.services import jobs as jobs_service
from app.services import spaces as spaces_service
from infra.after_commit import on_commit
from infra.db.base import new_id
from infra.db.models import Job, LatencyTable, Owner, Zoo
from infra.latency_tables import MEASURE_JOB, check_fits_zoo, load, store, summary
from infra.repositories import jobs as jobs_repo
from infra.repositories import latency_tables as latency_repo
from infra.repositories.common import get_owned, paginate
from infra.runtime import Runtime


class InvalidLatencyTable(ServiceError):
    status_code, code = 422, "invalid_latency_table"


class LatencyTableMismatch(ServiceError):
    status_code, code = 422, "latency_table_mismatch"


def _default_name(space_name: str, batch_size: int, device: str | None) -> str:
    return f"{space_name} b{batch_size} {device or 'worker'}"[:200]


def upload(session: Session, runtime: Runtime, owner: Owner, raw: bytes, name: str | None) -> LatencyTable:
    """Check an uploaded table (JSON bytes) and keep it; 422 with the reason when it does not fit its space."""
    try:
        table = LookupTable.from_json(raw, lazy=False)
        table.check_complete()
    except LatencyTableError as exc:
        raise InvalidLatencyTable(f"invalid latency table: {exc}") from None
    table_id = new_id("lat")
    path, content_hash = store(runtime.storage, table_id, table)
    row = latency_repo.add(session, LatencyTable(
        id=table_id, owner_id=owner.id, name=name or _default_name(table.space.name, table.batch_size, table.device),
        source="upload", state="ready", path=path, content_hash=content_hash, **summary(table),
    ))
    session.flush()
    return row


def measure(session: Session, owner: Owner, body: LatencyMeasureRequest) -> tuple[LatencyTable, Job]:
    """A ``measuring`` table and the job that times it on a worker's own device."""
    try:
        space = spaces_service.resolve(body.space)
    except (TypeError, ValueError) as exc:  # values of the wrong JSON type inside a custom definition
        raise InvalidSpace(f"invalid space definition: {exc}") from None
    if count_blocks(space) > MAX_BLOCKS:
        raise InvalidLatencyTable(f"space '{space.name}' has {count_blocks(space):,} candidate blocks; a latency "
                                  f"table holds at most {MAX_BLOCKS:,}")
    timing = body.timing.model_dump(exclude_none=True)
    row = latency_repo.add(session, LatencyTable(
        id=new_id("lat"), owner_id=owner.id, name=body.name or _default_name(space.name, body.batch_size, None),
        source="measured", state="measuring", space_name=space.name, space=space.to_dict(),
        in_channels=body.in_channels, num_classes=body.num_classes, batch_size=body.batch_size,
        request={"architectures": body.architectures, "coverage": body.coverage, "seed": body.seed,
                 "timing": timing},
    ))
    session.flush()  # the table row first: the job names it
    job = jobs_service.submit(session, owner_id=owner.id, kind=MEASURE_JOB, payload={"latency_table_id": row.id})
    session.flush()
    row.job_id = job.id
    session.flush()
    return row, job  # the job is enqueued once the request commits both rows


def list_page(session: Session, owner: Owner, limit: int, offset: int) -> tuple[list[LatencyTable], int]:
    return paginate(session, latency_repo.list_for_owner(owner.id), limit, offset)


def get(session: Session, owner: Owner, table_id: str) -> LatencyTable:
    row = get_owned(session, LatencyTable, owner.id, table_id)
    if row is None:
        raise NotFound(f"no latency table {table_id!r}; GET /v1/latency-tables lists yours")
    return row


def view(runtime: Runtime, row: LatencyTable, with_table: bool = False) -> dict[str, Any]:
    out = {name: getattr(row, name) for name in (
        "id", "name", "source", "state", "error", "space_name", "in_channels", "num_classes", "batch_size",
        "device", "machine", "torch_version", "blocks", "scale", "fastest_ms", "largest_ms", "content_hash",
        "job_id", "created_at")}
    if with_table and row.state == "ready":
        try:
            out["table"] = load(runtime.storage, row).to_dict()
        except LatencyTableError as exc:  # the file went missing or was edited by hand
            raise Conflict(str(exc), details={"latency_table_id": row.id}) from None
    return out


def delete(session: Session, runtime: Runtime, owner: Owner, table_id: str) -> None:
    row = get(session, owner, table_id)
    if row.state == "measuring":
        raise Conflict(f"latency table {table_id!r} is being measured by job {row.job_id}; cancel the job "
                       f"(POST /v1/jobs/{row.job_id}/cancel), then delete the table",
                       details={"job_id": row.job_id, "state": row.state})
    path = runtime.storage.latency_table_path(row.id)
    latency_repo.delete(session, row)
    on_commit(session, lambda: path.unlink(missing_ok=True))


def table_for_zoo(session: Session, runtime: Runtime, owner: Owner, table_id: str, zoo: Zoo) -> LookupTable:
    """The owner's ready table ``table_id``, checked to predict the networks of ``zoo``.

    404 for a table the owner does not have, 409 while it is measured (or failed), 422 when it
    was measured for another space or input/output shape.
    """
    row = get(session, owner, table_id)
    if row.state != "ready":
        job = jobs_repo.get(session, row.job_id) if row.job_id else None
        hint = "poll it and retry once it is ready" if row.state == "measuring" else \
            f"measuring it failed ({row.error or (job.error if job else 'no reason recorded')})"
        raise Conflict(f"latency table {table_id!r} is {row.state}; {hint}",
                       details={"latency_table_id": table_id, "state": row.state, "job_id": row.job_id})
    try:
        table = load(runtime.storage, row)
        check_fits_zoo(table, zoo)
    except LatencyTableError as exc:
        raise LatencyTableMismatch(f"latency table {table_id!r} does not fit zoo {zoo.id!r}: {exc}",
                                   details={"latency_table_id": table_id, "zoo_id": zoo.id}) from None
    return table
