"""Latency table vs measured end-to-end latency of assembled networks (issue 5, part 3).

A per-block latency table is measured on this machine (CPU, one thread) for the blocks of
``--archs`` random ``mbv3-tiny`` architectures; its predictions (sum of parts) are compared
with the measured latency of the assembled networks: Spearman and Kendall rank correlation
and the median absolute percentage error (APE), raw and after calibrating the table's
``scale`` on ``--calibrate`` *other* random architectures. MACs are reported as the
baseline predictor of latency.

    .venv/bin/python -m bench.latency            # writes bench/results/latency.{md,json}
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

from blockzoo.cost_model import block_cost, cost
from blockzoo.latency import LatencyTable, Timing, machine_description, measure_networks_ms
from blockzoo.space import get_space, sample_architectures

RESULTS = Path(__file__).resolve().parent / "results"


def _ape(pred: list[float], meas: list[float]) -> list[float]:
    return [abs(p - m) / m for p, m in zip(pred, meas)]


def run(batch_size: int, args: argparse.Namespace, timing: Timing) -> dict:
    """Table vs networks at one batch size. ``--passes`` times: a fresh table of every needed
    block, then every network; each latency is the minimum over the passes, so parts and
    networks alike get the machine's quiet moments (load on the shared cores drifts over
    minutes, more than the interleaved rounds inside one pass can average out)."""
    space = get_space(args.space)
    archs = sample_architectures(space, args.archs, args.seed)
    calibration = [a for a in sample_architectures(space, 4 * args.calibrate, args.seed + 1)
                   if a not in archs][:args.calibrate]
    networks = archs + calibration
    tables, measured_passes = [], []
    started = time.perf_counter()
    for _ in range(args.passes):
        table = LatencyTable.measure(space, args.in_channels, args.num_classes, batch_size=batch_size,
                                     timing=timing)
        table.ensure(networks)
        tables.append(table)
        measured_passes.append(measure_networks_ms(space, networks, args.in_channels, args.num_classes,
                                                   batch_size=batch_size, timing=timing))
    seconds = time.perf_counter() - started
    table = tables[0]
    table.prefix_ms = min(t.prefix_ms for t in tables)
    table.head_ms = min(t.head_ms for t in tables)
    table.blocks = {key: min(t.blocks[key] for t in tables) for key in table.blocks}
    measured_all = [min(values) for values in zip(*measured_passes)]
    measured, measured_cal = measured_all[:len(archs)], measured_all[len(archs):]
    raw = [table.predict(a) for a in archs]
    # LatencyTable.calibrate's fit, on the pass-combined measurements of the calibration networks.
    table.scale = statistics.median(m / table.predict(a) for a, m in zip(calibration, measured_cal))
    calibrated = [table.predict(a) for a in archs]
    macs = [cost(space, a, args.in_channels, args.num_classes).macs for a in archs]
    table.save(RESULTS / "tmp" / f"latency-table-b{batch_size}.json")
    return {
        "batch_size": batch_size,
        "architectures": len(archs),
        "table_blocks": len(table),
        "passes": args.passes,
        "seconds": round(seconds, 1),
        "spearman": float(spearmanr(raw, measured)[0]),
        "kendall": float(kendalltau(raw, measured)[0]),
        "median_ape": statistics.median(_ape(raw, measured)),
        "max_ape": max(_ape(raw, measured)),
        "sum_over_measured": statistics.median(p / m for p, m in zip(raw, measured)),
        "calibration_architectures": len(calibration),
        "scale": table.scale,
        "calibrated_median_ape": statistics.median(_ape(calibrated, measured)),
        "calibrated_max_ape": max(_ape(calibrated, measured)),
        "macs_spearman": float(spearmanr(macs, measured)[0]),
        "pass_to_pass_spearman": float(spearmanr(measured_passes[0][:len(archs)],
                                                 measured_passes[-1][:len(archs)])[0]),
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
        f"Command: `{result['command'].strip()}`",
        "",
        f"Machine: {result['machine']}. Load average at start: {result['load_average']}.",
        "",
        f"{result['runs'][0]['architectures']} random architectures (seed {result['seed']}); the table holds the "
        "prefix, the head and every block they need, each timed alone; a network's prediction is the "
        "sum of its parts. Measured = the assembled network timed end to end, same timing: "
        f"{t['warmup']} warm-up runs, then {t['rounds']} interleaved rounds of {t['repeats']} timed runs, "
        f"the {t['statistic']} of them, clock `{t['clock']}` (the thread's CPU time: the 2 cores are "
        "shared with other jobs, and wall-clock medians of one network varied 2x between runs); the "
        f"table and the networks are measured in {result['runs'][0]['passes']} alternating passes and each "
        "latency is its minimum over the passes. "
        f"`scale` is fitted on {result['runs'][0]['calibration_architectures']} other random architectures "
        "(`LatencyTable.calibrate`'s median ratio). `pass-to-pass` = Spearman between the first and last "
        "pass's measured network latencies: the measurement noise ceiling.",
        "",
        "| batch | Spearman | Kendall | median APE (sum) | max APE (sum) | sum / measured | scale | "
        "median APE (calibrated) | max APE (calibrated) | Spearman of MACs | pass-to-pass | "
        "measured ms (min / median / max) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        m = r["measured_ms"]
        lines.append(
            f"| {r['batch_size']} | {r['spearman']:.3f} | {r['kendall']:.3f} | {100 * r['median_ape']:.1f}% | "
            f"{100 * r['max_ape']:.1f}% | {r['sum_over_measured']:.3f} | {r['scale']:.3f} | "
            f"{100 * r['calibrated_median_ape']:.1f}% | {100 * r['calibrated_max_ape']:.1f}% | "
            f"{r['macs_spearman']:.3f} | {r['pass_to_pass_spearman']:.3f} | "
            f"{m['min']:.2f} / {m['median']:.2f} / {m['max']:.2f} |"
        )
    space = get_space(result["space"])
    trend = {}
    for r in result["runs"]:
        ratio = [a["predicted_ms"] / a["measured_ms"] for a in r["per_architecture"]]
        first = [block_cost(space, 0, space.parse(a["arch_id"]).expand[0]).macs for a in r["per_architecture"]]
        trend[r["batch_size"]] = float(spearmanr(ratio, first)[0])
    lines += [
        "",
        "Reading:",
        "",
        "- Spearman says how well the table ranks networks, which is what a `max_latency_ms` search needs. "
        "`pass-to-pass` bounds what any predictor can reach against measurements this noisy.",
        "- The plain sum runs low by a near-constant factor (`sum / measured`): a part timed alone has its "
        "kernels, weights and activations to itself. `LatencyTable.calibrate` fits the factor from a few "
        "measured networks (`scale`); at batch 1 it transfers to new architectures (calibrated APE above).",
        "- Batch 1: per-layer dispatch dominates CPU latency, which MACs ignore and the table measures, "
        "hence the table's lead over MACs. At larger batches compute dominates and MACs rank about as well; "
        "the sum's shortfall also grows with the first stage's size (Spearman of sum/measured vs the first "
        "searchable block's MACs: "
        + ", ".join(f"batch {b}: {v:.2f}" for b, v in trend.items())
        + "), likely because its 16x16 feature maps no longer stay in cache between parts in a network; "
        "one scale then fits less well.",
        "- History: an earlier run of this script (one pass of 10 rounds instead of 3 passes of 4) gave "
        "Spearman 0.948 at batch 1 and 0.888 at batch 16; the passes were added because load on the shared "
        "cores drifts over minutes.",
        "",
        "Per-architecture numbers: `latency.json`. Tables: `bench/results/tmp/latency-table-b*.json` "
        "(not committed: machine-specific).",
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
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=4)
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
        "command": " ".join([".venv/bin/python -m bench.latency",
                             *(sys.argv[1:] if argv is None else argv)]),
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
