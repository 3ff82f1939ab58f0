"""Score results as the API answers them and the ``score`` job returns them: one body, one builder.

Scores are cached per (zoo, architecture, metric) in ``score_results``; the body is built from
those rows, so an answer from the cache and the result of a job are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from blockzoo.cost_model import cost
from blockzoo.latency.table import LatencyTable as LookupTable
from blockzoo.pipeline import PROXY_METRICS, ZERO_COST_BASELINES
from blockzoo.space import Architecture, SearchSpace

from infra.db.models import Zoo

PROXY_METRIC = PROXY_METRICS[0]  # "proxy_accuracy", always computed and answered
# Beyond proxy_accuracy, a request may ask for the proxy's extra signals and the zero-cost
# baselines of DESIGN §4 (blockzoo.zerocost); macs and params are always included.
ZOO_METRICS = PROXY_METRICS[1:]
BASELINE_METRICS = ZERO_COST_BASELINES  # the CLI's `score --metrics` takes the same names


def missing(values: dict[tuple[str, str], float | None], arch_ids: Sequence[str], metrics: Sequence[str]) -> bool:
    return any((a, m) not in values for a in arch_ids for m in (PROXY_METRIC, *metrics))


def result_body(zoo: Zoo, space: SearchSpace, archs: Sequence[Architecture], metrics: Sequence[str],
                values: dict[tuple[str, str], float | None], job_id: str | None,
                latency: LookupTable | None = None, latency_table_id: str | None = None) -> dict[str, Any]:
    """The answer; with a latency table (checked to fit the zoo), each item's predicted ``latency_ms``."""
    items = []
    for arch in archs:
        c = cost(space, arch, in_channels=zoo.in_channels, num_classes=zoo.num_classes)
        items.append({
            "arch_id": arch.id, "architecture": arch.to_dict(), "proxy_accuracy": values.get((arch.id, PROXY_METRIC)),
            "macs": c.macs, "params": c.params, "latency_ms": latency.predict(arch) if latency else None,
            "metrics": {m: values.get((arch.id, m)) for m in metrics},
        })
    return {"zoo_id": zoo.id, "job_id": job_id, "latency_table_id": latency_table_id if latency else None,
            "items": items}
