"""Latency table vs measured end-to-end latency of assembled networks (issue 5, part 3).

A per-block latency table is measured on this machine (CPU, one thread) for the blocks of
``--archs`` random ``mbv3-tiny`` architectures; its predictions (sum of parts) are compared
with the measured latency of the assembled networks: Spearman and Kendall rank correlation
and the median absolute percentage error (APE), raw and after calibrating the table's
``scale`` on ``--calibrate`` *other* random architectures. MACs are reported as the
baseline predictor of latency.

    PYTHONPATH=. .venv/bin/python bench/latency.py            # writes bench/results/latency.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from scipy.stats import kendalltau, spearmanr

from blockzoo.cost_model import cost
from blockzoo.latency import LatencyTable, Timing, machine_description, measure_networks_ms
from blockzoo.space import get_space, sample_architectures

RESULTS = Path(__file__).resolve().parent / "results"


def _ape(pred: list[float], meas: list[float]) -> list[float]:
    return [abs(p - m) / m for p, m in zip(pred, meas)]


def run(batch_size: int, args: argparse.Namespace, timing: Timing) -> dict:
    space = get_space(args.space)
    archs = sample_architectures(space, args.archs, args.seed)
    calibration = [a for a in sample_architectures(space, 4 * args.calibrate, args.seed + 1)
                   if a not in archs][:args.calibrate]
    started = time.perf_counter()
    table = LatencyTable.measure(space, args.in_channels, args.num_classes, batch_size=batch_size, timing=timing)
    table.ensure(archs + calibration)
    table_seconds = time.perf_counter() - started
    raw = [table.predict(a) for a in archs]
    started = time.perf_counter()
    measured = measure_networks_ms(space, archs, args.in_channels, args.num_classes, batch_size=batch_size,
                                   timing=timing)
    measure_seconds = time.perf_counter() - started
    scale = table.calibrate(calibration)
    calibrated = [table.predict(a) for a in archs]
    macs = [cost(space, a, args.in_channels, args.num_classes).macs for a in archs]
    table.save(RESULTS / "tmp" / f"latency-table-b{batch_size}.json")
    return {
        "batch_size": batch_size,
        "architectures": len(archs),
        "table_blocks": len(table),
        "table_seconds": round(table_seconds, 1),
        "measure_seconds": round(measure_seconds, 1),
        "spearman": float(spearmanr(raw, measured)[0]),
        "kendall": float(kendalltau(raw, measured)[0]),
        "median_ape": statistics.median(_ape(raw, measured)),
        "max_ape": max(_ape(raw, measured)),
        "sum_over_measured": statistics.median(p / m for p, m in zip(raw, measured)),
        "calibration_architectures": len(calibration),
        "scale": scale,
        "calibrated_median_ape": statistics.median(_ape(calibrated, measured)),
        "calibrated_max_ape": max(_ape(calibrated, measured)),
        "macs_spearman": float(spearmanr(macs, measured)[0]),
        "measured_ms": {"min": min(measured), "median": statistics.median(measured), "max": max(measured)},
        "per_architecture": [
            {"arch_id": a.id, "macs": m, "predicted_ms": p, "calibrated_ms": c, "measured_ms": t}
            for a, m, p, c, t in zip(archs, macs, raw, calibrated, measured)
        ],
    }


def write_markdown(result: dict, path: Path) -> None:
    t = result["timing"]
    lines = [
        "# Latency table vs measured latency (`mbv3-tiny`, CPU)",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Machine: {result['machine']}. Load average at start: {result['load_average']}.",
        "",
        f"{result['runs'][0]['architectures']} random architectures (seed {result['seed']}); the table holds the "
        "prefix, the head and every block they need, each timed alone; a network's prediction is the "
        "sum of its parts. Measured = the assembled network timed end to end, same timing: "
        f"{t['warmup']} warm-up runs, then {t['rounds']} interleaved rounds of {t['repeats']} timed runs, "
        f"the {t['statistic']} of them, clock `{t['clock']}` (the thread's CPU time: the 2 cores are "
        "shared with other jobs, and wall-clock medians of one network varied 2x between runs). "
        f"`scale` is fitted on {result['runs'][0]['calibration_architectures']} other random architectures.",
        "",
        "| batch | Spearman | Kendall | median APE (sum) | max APE (sum) | sum / measured | scale | "
        "median APE (calibrated) | max APE (calibrated) | Spearman of MACs | measured ms (min / median / max) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        m = r["measured_ms"]
        lines.append(
            f"| {r['batch_size']} | {r['spearman']:.3f} | {r['kendall']:.3f} | {100 * r['median_ape']:.1f}% | "
            f"{100 * r['max_ape']:.1f}% | {r['sum_over_measured']:.3f} | {r['scale']:.3f} | "
            f"{100 * r['calibrated_median_ape']:.1f}% | {100 * r['calibrated_max_ape']:.1f}% | "
            f"{r['macs_spearman']:.3f} | {m['min']:.2f} / {m['median']:.2f} / {m['max']:.2f} |"
        )
    lines += [
        "",
        "Reading: Spearman says how well the table ranks networks (what a `max_latency_ms` search needs); "
        "the plain sum is off by a near-constant factor (`sum / measured`): a part timed alone has its "
        "kernels, weights and allocations to itself. `LatencyTable.calibrate` fits that factor from a few "
        "measured networks. Per-architecture numbers: `latency.json`.",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="mbv3-tiny")
    parser.add_argument("--archs", type=int, default=40)
    parser.add_argument("--calibrate", type=int, default=10)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--in-channels", type=int, default=1)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", action="store_true", help="only rewrite latency.md from latency.json")
    args = parser.parse_args(argv)
    if args.render:
        out = json.loads((args.out / "latency.json").read_text())
        write_markdown(out, args.out / "latency.md")
        return out
    load_average = [round(x, 2) for x in os.getloadavg()]
    torch.set_num_threads(1)  # the worker's CPU setting, and what clock="thread" requires
    timing = Timing(warmup=5, repeats=args.repeats, rounds=args.rounds, statistic="min", clock="thread")
    runs = []
    for batch_size in args.batch_sizes:
        runs.append(run(batch_size, args, timing))
        r = runs[-1]
        print(f"batch {batch_size}: spearman {r['spearman']:.3f}, median APE {100 * r['median_ape']:.1f}% "
              f"(calibrated {100 * r['calibrated_median_ape']:.1f}%, scale {r['scale']:.3f}), "
              f"MACs spearman {r['macs_spearman']:.3f}", flush=True)
    result = {
        "command": "PYTHONPATH=. .venv/bin/python bench/latency.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_description("cpu"),
        "load_average": load_average,
        "space": args.space, "seed": args.seed, "timing": timing.to_dict(), "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latency.json").write_text(json.dumps(result, indent=1))
    write_markdown(result, args.out / "latency.md")
    return result


if __name__ == "__main__":
    main()
