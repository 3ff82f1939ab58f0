"""``selftest``: exercises the job machinery end to end without the ML core.

Counts ``steps`` steps of ``step_s`` seconds, reporting progress and honouring cancel, then
returns which process ran it; used by ``/ready``-style checks and the job tests of both
backends. With ``read_db`` each step also reads the job's row (as real jobs read and write
theirs), so a database outage reaches the job function; ``runs`` in the result counts the
times the function was entered by this job's runs (a resumed job enters it again).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from sqlalchemy import select

from infra.db.models import Job
from worker.context import JobContext
from worker.registry import job_kind


_RUNS: dict[str, int] = {}  # job id -> times this process entered the function for it


@job_kind("selftest")
def selftest(ctx: JobContext) -> dict[str, Any]:
    steps = int(ctx.payload.get("steps", 3))
    step_s = float(ctx.payload.get("step_s", 0.05))
    _RUNS[ctx.job_id] = _RUNS.get(ctx.job_id, 0) + 1
    for step in range(steps):
        ctx.check_stop()
        time.sleep(step_s)
        if ctx.payload.get("read_db"):
            with ctx.session() as session:
                session.execute(select(Job.id).where(Job.id == ctx.job_id)).one()
        ctx.progress((step + 1) / steps, f"step {step + 1}/{steps}")
    if ctx.payload.get("fail"):
        raise RuntimeError(str(ctx.payload["fail"]))
    return {"steps": steps, "pid": os.getpid(), "host": socket.gethostname(), "runs": _RUNS.pop(ctx.job_id)}
