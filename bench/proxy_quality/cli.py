"""The command line of ``python -m bench.proxy_quality``: which protocol, which stages."""

from __future__ import annotations

import argparse
import os
import time

import torch

from blockzoo.progress import Cancelled

from .protocols import PROTOCOLS, PROXY_GROUPS
from .proxies import measure_cpu_cost, run_proxies
from .report import make_report
from .workers import groundtruth_worker, parallel_run, run_groundtruth
from .workspace import RESULTS, Bench, log


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy_quality",
                                     description="Proxy quality (paper Table 1, Fig. 2, Fig. 3)")
    parser.add_argument("--stage", choices=("proxies", "groundtruth", "report", "all", "parallel", "gtworker",
                                            "cpu-cost"),
                        default="all", help="parallel: --workers ground-truth processes + reference, zoo and "
                        "proxies in this one (for a GPU machine); gtworker: one such worker")
    parser.add_argument("--protocols", default=None,
                        help="parallel/gtworker: comma-separated protocols whose jobs are shared, in priority order")
    parser.add_argument("--workers", type=int, default=4, help="parallel: ground-truth worker processes")
    parser.add_argument("--deadline-at", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="cpu")
    parser.add_argument("--quick", action="store_true", help="the quick protocol (<= 15 minutes, smoke run)")
    parser.add_argument("--budget-minutes", type=float, default=None, help="stop cleanly after this long")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--proxies", default=",".join(PROXY_GROUPS),
                        help=f"proxy groups for --stage proxies, comma-separated (default: {','.join(PROXY_GROUPS)}; "
                        "also 'tuning': the TUNING_VARIANTS, for the dev protocol)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    protocol = PROTOCOLS["quick" if args.quick else args.protocol]
    deadline = time.time() + 60 * args.budget_minutes if args.budget_minutes else None
    if args.deadline_at is not None:
        deadline = args.deadline_at
    groups = tuple(g for g in args.proxies.split(",") if g)
    if args.stage in ("parallel", "gtworker"):
        if torch.cuda.is_available():
            torch.backends.cudnn.benchmark = True
        names = (args.protocols or protocol.name).split(",")
        benches = [Bench(PROTOCOLS[n], deadline) for n in names]
        if args.stage == "gtworker":
            log(f"worker {os.getpid()}: {groundtruth_worker(benches, deadline)} trainings finished")
        else:
            parallel_run(benches, args.workers, deadline, groups)
        return
    bench = Bench(protocol, deadline)
    if args.stage == "cpu-cost":
        measure_cpu_cost(bench, args.threads)
        return
    stem = RESULTS / ("proxy_quality" if protocol.name == "cpu" else f"proxy_quality.{protocol.name}")
    started = time.perf_counter()
    try:
        if args.stage in ("proxies", "all"):
            run_proxies(bench, groups)
        if args.stage in ("groundtruth", "all"):
            run_groundtruth(bench)
    except Cancelled:
        log("budget reached: finished work is cached; rerun the same command to continue")
    if args.stage in ("report", "all"):
        report = make_report(bench, stem)
        log(f"report written: {stem}.md (status {report['status']}, ceiling {report['ceiling']})")
    log(f"total {time.perf_counter() - started:.0f} s")
