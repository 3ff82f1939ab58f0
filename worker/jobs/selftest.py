"""``selftest``: exercises the job machinery end to end without the ML core.

Counts ``steps`` steps of ``step_s`` seconds, reporting progress and honouring cancel, then
returns which process ran it; used by ``/ready``-style checks and the job tests of both
backends.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from worker.context import JobContext
from worker.registry import job_kind


@job_kind("selftest")
def selftest(ctx: JobContext) -> dict[str, Any]:
    steps = int(ctx.payload.get("steps", 3))
    step_s = float(ctx.payload.get("step_s", 0.05))
    for step in range(steps):
        ctx.check_stop()
        time.sleep(step_s)
        ctx.progress((step + 1) / steps, f"step {step + 1}/{steps}")
    if ctx.payload.get("fail"):
        raise RuntimeError(str(ctx.payload["fail"]))
    return {"steps": steps, "pid": os.getpid(), "host": socket.gethostname()}
