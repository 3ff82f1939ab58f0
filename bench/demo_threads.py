"""Issue 16, item 1: the demo's core steps with the default thread count vs 1 thread vs torch's own.

The steps ``blockzoo demo`` makes a server run, as the ``blockzoo`` command runs them, each
configuration in fresh processes: train the reference (``--epochs``), create a lazy zoo
(``--kd-batches`` KD batches), score ``--count`` seeded architectures (distilling their blocks).
Configurations, side by side in one run, interleaved round by round with their order rotated so
that all see the same machine load:

  default  no ``--threads`` and no ``OMP_NUM_THREADS``: the rule of ``blockzoo.threads``
           (``cores // (slots + 1)``, one slot on the command line)
  1        ``--threads 1``
  torch    ``--threads <cores>``: torch's own default, one thread per core (the old behaviour)

Reports wall seconds per step and configuration (median over ``--rounds``), the machine and its
load average before and after, and whether the configurations' scores agree (they need not be
bit-identical: docs/cli.md, "Threads").

    .venv/bin/python -m bench.demo_threads [--rounds 1] [--dataset digits]
    # writes bench/results/demo_threads.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.benchutil import cpu_model
from blockzoo.threads import available_cores, job_threads

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
STEPS = ("reference", "zoo", "score")


def _run(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "blockzoo.cli", *args, "--no-progress"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"blockzoo {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return time.perf_counter() - started, out.stdout


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def run_config(name: str, threads: list[str], store: Path, work: Path, opts: argparse.Namespace) -> dict:
    folder = work / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    env = _env()
    times = {}
    times["reference"], _ = _run(["reference", "train", "--dataset", str(store), "--out", str(folder / "ref.safetensors"),
                                  "--epochs", str(opts.epochs), "--no-flip", *threads], env)
    times["zoo"], _ = _run(["zoo", "build", "--dataset", str(store), "--reference", str(folder / "ref.safetensors"),
                            "--out", str(folder / "zoo"), "--lazy", "--batches", str(opts.kd_batches), *threads], env)
    times["score"], out = _run(["score", "--zoo", str(folder / "zoo"), "--sample", str(opts.count), "--seed", "0",
                                "--json", *threads], env)
    scores = {i["arch_id"]: i["proxy_accuracy"] for i in json.loads(out)["items"]}
    return {"seconds": times, "scores": scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--kd-batches", type=int, default=10)
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--work", type=Path, default=RESULTS / "tmp" / "demo_threads")
    opts = parser.parse_args()

    cores = available_cores()
    configs = {"default": [], "1": ["--threads", "1"], "torch": ["--threads", str(cores)]}
    opts.work.mkdir(parents=True, exist_ok=True)
    _, out = _run(["dataset", "import", opts.dataset, "--root", str(opts.work / "datasets"), "--json"], _env())
    store = Path(json.loads(out)["path"])
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    names = list(configs)
    for round_ in range(opts.rounds):
        order = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in order:
            runs[name].append(run_config(name, configs[name], store, opts.work, opts))
            print(f"round {round_ + 1}: {name}: {runs[name][-1]['seconds']}", flush=True)
    load_after = os.getloadavg()

    summary = {name: {step: statistics.median(r["seconds"][step] for r in rs) for step in STEPS}
               for name, rs in runs.items()}
    for name in summary:
        summary[name]["total"] = sum(summary[name][s] for s in STEPS)
    first = {name: rs[0]["scores"] for name, rs in runs.items()}
    deltas = {name: max(abs(first[name][a] - first["1"][a]) for a in first["1"]) for name in configs}
    report = {
        "machine": {"cpu": cpu_model(), "cores_available": cores, "default_threads": job_threads(cores, 1),
                    "load_before": load_before, "load_after": load_after},
        "settings": {"dataset": opts.dataset, "epochs": opts.epochs, "kd_batches": opts.kd_batches,
                     "count": opts.count, "rounds": opts.rounds},
        "threads": {"default": job_threads(cores, 1), "1": 1, "torch": cores},
        "median_seconds": summary, "max_abs_proxy_accuracy_difference_vs_1_thread": deltas, "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "demo_threads.json").write_text(json.dumps(report, indent=2))
    lines = [
        "# Demo core steps: default threads vs 1 vs torch's default",
        "",
        "Command: `" + " ".join(["python -m bench.demo_threads", *sys.argv[1:]]) + "`",
        "",
        f"Machine: {report['machine']['cpu']}, {cores} cores available; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after. Settings: {report['settings']}.",
        "",
        "| configuration | threads | reference (s) | zoo (s) | score (s) | total (s) | max Δ proxy acc. vs 1 thread |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in configs:
        s = summary[name]
        lines.append(f"| {name} | {report['threads'][name]} | {s['reference']:.1f} | {s['zoo']:.1f} | "
                     f"{s['score']:.1f} | {s['total']:.1f} | {deltas[name]:.4f} |")
    (RESULTS / "demo_threads.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
