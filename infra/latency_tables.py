"""Latency tables as the service keeps them: one JSON file per table, summarised on its row.

Shared by the API (uploads, predictions for scores and budgets) and the workers (the measuring
job, searches): reading a table is pure Python (``blockzoo.latency.table``), so the API never
loads torch for it. Stored tables are complete and not lazy: a prediction never measures.
"""

from __future__ import annotations

from typing import Any

from blockzoo.files import file_sha256, write_atomic
from blockzoo.latency.table import LatencyTable as LookupTable
from blockzoo.latency.table import LatencyTableError

from infra.db.models import LatencyTable, Zoo
from infra.repositories import zoos as zoos_repo
from infra.storage import Storage

MEASURE_JOB = "measure_latency"  # the job kind that measures a table on a worker's device


def summary(table: LookupTable) -> dict[str, Any]:
    """The row's columns that describe a (complete) table."""
    return {
        "space_name": table.space.name, "space": table.space.to_dict(), "in_channels": table.in_channels,
        "num_classes": table.num_classes, "batch_size": table.batch_size, "device": table.device,
        "machine": table.machine, "torch_version": table.torch_version, "blocks": len(table),
        "scale": table.scale, "fastest_ms": table.predict(table.fastest()),
        "largest_ms": table.predict(table.space.reference),
    }


def store(storage: Storage, table_id: str, table: LookupTable) -> tuple[str, str]:
    """Write the table's canonical JSON; returns (path relative to the data dir, content hash)."""
    path = storage.latency_table_path(table_id)
    write_atomic(path, table.to_json())
    return storage.relative(path), file_sha256(path)


def load(storage: Storage, row: LatencyTable) -> LookupTable:
    """The stored table of a ``ready`` row (checked again on reading: the file is data)."""
    if row.state != "ready" or not row.path:
        raise LatencyTableError(f"latency table {row.id!r} is {row.state}; it has no table to predict with")
    try:
        data = storage.resolve(row.path).read_bytes()
    except OSError as exc:
        raise LatencyTableError(f"the file of latency table {row.id!r} is missing from the data directory: "
                                f"{exc.strerror}") from None
    table = LookupTable.from_json(data, lazy=False)
    table.check_complete()
    return table


def check_fits_zoo(table: LookupTable, zoo: Zoo) -> None:
    """Raise :class:`LatencyTableError` unless ``table`` predicts the networks of ``zoo`` (space, shapes)."""
    table.check_compatible(zoos_repo.space_of(zoo), zoo.in_channels, zoo.num_classes)
