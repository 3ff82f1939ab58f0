"""Job kinds: a name, the function that runs it, and what to do to domain rows if it fails.

A new kind (``search``, ``finetune``, ...) is a module in ``worker/jobs/`` that decorates its
function with ``@job_kind("name")`` and is imported by ``worker/jobs/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.context import JobContext

JobFn = Callable[["JobContext"], "dict[str, Any] | None"]
FailureFn = Callable[["JobContext", str], None]


@dataclass(frozen=True)
class JobKind:
    name: str
    run: JobFn
    on_failure: FailureFn | None = None  # e.g. a failed build marks its zoo failed


JOB_KINDS: dict[str, JobKind] = {}


def job_kind(name: str, *, on_failure: FailureFn | None = None) -> Callable[[JobFn], JobFn]:
    def register(fn: JobFn) -> JobFn:
        if name in JOB_KINDS:
            raise ValueError(f"job kind {name!r} registered twice")
        JOB_KINDS[name] = JobKind(name, fn, on_failure)
        return fn

    return register


def get_kind(name: str) -> JobKind:
    import worker.jobs  # noqa: F401  (registers the built-in kinds)

    try:
        return JOB_KINDS[name]
    except KeyError:
        raise LookupError(f"unknown job kind {name!r}; known: {sorted(JOB_KINDS)}") from None
