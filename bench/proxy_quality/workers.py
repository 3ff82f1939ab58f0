"""The ground-truth stage: one process working down the job list, or several worker processes
sharing it (each training is claimed by one worker; see ``blockzoo.validation.groundtruth``)."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Optional

from blockzoo.progress import Cancelled

from .proxies import run_proxies
from .workspace import ROOT, Bench, log


def run_groundtruth(bench: Bench) -> tuple[int, int]:
    """Every job of ``bench`` in priority order, in this process, until done or its deadline."""
    done, remaining = bench.groundtruth().run_all(bench.jobs(), bench.deadline)
    log(f"ground truth: {done} done, {remaining} remaining")
    return done, remaining


def groundtruth_worker(benches: list[Bench], deadline: Optional[float]) -> int:
    """Train the highest-priority job no other worker holds, again and again, across ``benches``.

    PR/KD jobs wait until the main process has trained the reference and distilled the blocks
    they need (a worker never distils: one process owns the zoo). Returns trainings finished."""
    gts = [b.groundtruth(with_zoo=False) for b in benches]
    queue = sorted(((tier, n, i, job) for n, b in enumerate(benches) for i, (tier, job) in enumerate(b.tiered_jobs())),
                   key=lambda t: t[:3])
    stop = (lambda: time.time() > deadline) if deadline is not None else None
    finished = 0
    while deadline is None or time.time() < deadline:
        trained, waiting = False, False
        for _, n, _, job in queue:
            bench, gt = benches[n], gts[n]
            if job.init != "SC":
                if gt.zoo is None:
                    if not bench.zoo_ready():
                        waiting = True
                        continue
                    gt.zoo = bench.zoo(bench.p.distill)
                if gt.zoo.missing_blocks([job.arch]):
                    waiting = True
                    continue
            if gt.cached(job) is not None:
                continue
            try:
                record = gt.run(job, stop)
            except Cancelled:
                return finished
            if record is not None:
                finished += 1
                trained = True
                break  # rescan from the top: priorities first
        if not trained:
            if not waiting:
                break
            time.sleep(5)
    return finished


def parallel_run(benches: list[Bench], workers: int, deadline: Optional[float], groups: tuple[str, ...]) -> None:
    """``workers`` ground-truth processes, while this one trains the reference, distils every
    protocol's blocks (unblocking PR/KD jobs) and computes the first protocol's proxies."""
    names = ",".join(b.p.name for b in benches)
    command = [sys.executable, "-m", "bench.proxy_quality", "--stage", "gtworker", "--protocols", names,
               "--threads", "1"] + (["--deadline-at", str(deadline)] if deadline else [])
    procs = [subprocess.Popen(command, cwd=ROOT) for _ in range(workers)]
    log(f"started {workers} ground-truth workers")
    try:
        benches[0].ensure_reference()
        for bench in benches:
            zoo = bench.zoo(bench.p.distill)
            log(f"{bench.p.name}: distilling the blocks of {len(bench.archs)} architectures")
            zoo.ensure_blocks(bench.archs, should_stop=bench.should_stop)
        run_proxies(benches[0], groups)
    except Cancelled:
        log("budget reached in the main process")
    finally:
        for proc in procs:
            proc.wait()
    log("all workers finished")
