"""Issue acceptance: reference training time and test accuracy with the default recipe.

"On mbv3-tiny + Fashion-MNIST (10,000 training images, 16x16): reference training with the default
recipe finishes in <= 10 minutes on 2 CPU cores; report its test accuracy."

Imports Fashion-MNIST (Debian package ``dataset-fashion-mnist``) with ``train_limit=10000`` (a
seeded, class-stratified subset; the official 10,000-image test split is kept whole) into
``bench/results/tmp/reference_training/``, trains the reference with ``TrainRecipe()`` on the CPU and writes
``bench/results/reference_training.{json,md}``. The machine may be shared, so the load average is
sampled during the run and reported next to the time.

    .venv/bin/python -m bench.reference_training [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from blockzoo.data import import_builtin, open_store
from blockzoo.reference import train_reference
from blockzoo.space import get_space
from blockzoo.training import TrainRecipe
from bench.benchutil import cpu_model

RESULTS = Path(__file__).resolve().parent / "results"
LIMIT_SECONDS = 600
SPACE = "mbv3-tiny"
TRAIN_LIMIT = 10_000


class LoadSampler:
    """Progress callback that logs every 5% and samples the 1-minute load average as it goes."""

    def __init__(self) -> None:
        self.samples: list[float] = [os.getloadavg()[0]]
        self.started = time.perf_counter()
        self._next = 0.05

    def __call__(self, fraction: float, message: str) -> None:
        if fraction >= self._next or fraction >= 1.0:
            load = os.getloadavg()[0]
            self.samples.append(load)
            elapsed = time.perf_counter() - self.started
            print(f"[{elapsed:7.1f} s] {fraction:5.1%} {message} (load {load:.2f})", file=sys.stderr, flush=True)
            while self._next <= fraction:
                self._next += 0.05


def run(threads: int | None, keep: bool) -> dict:
    if threads:
        torch.set_num_threads(threads)
    tmp = RESULTS / "tmp" / "reference_training"  # tmp/ is shared with other benches: own subfolder
    load_before = os.getloadavg()
    started = time.perf_counter()
    info = import_builtin("fashion-mnist", tmp / "datasets", seed=0, train_limit=TRAIN_LIMIT)
    store = open_store(info.path)
    import_seconds = time.perf_counter() - started

    recipe = TrainRecipe()
    sampler = LoadSampler()
    cpu_started = time.process_time()
    result = train_reference(get_space(SPACE), store, recipe, tmp / "reference.safetensors",
                             device=torch.device("cpu"), progress=sampler)
    cpu_seconds = time.process_time() - cpu_started  # CPU time this process got: contention-free work
    wall = time.perf_counter() - started
    load_after = os.getloadavg()
    if not keep:
        shutil.rmtree(tmp, ignore_errors=True)

    return {
        "task": f"reference training, {SPACE}, Fashion-MNIST {TRAIN_LIMIT} train images at 16x16",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python -m bench.reference_training", *sys.argv[1:]]),
        "recipe": recipe.to_dict(),
        "dataset": {"name": info.name, "content_hash": info.content_hash, "num_train": info.num_train,
                    "num_test": info.num_test, "image_shape": list(info.image_shape)},
        "seconds": result.seconds,               # training loop + test evaluation (train_network)
        "seconds_with_data": wall,               # + dataset import and tensor preparation
        "import_seconds": import_seconds,
        "cpu_seconds": cpu_seconds,              # process CPU time during train_reference (all threads)
        "limit_seconds": LIMIT_SECONDS,
        "within_limit": result.seconds <= LIMIT_SECONDS,
        "steps": result.steps,
        "seconds_per_step": result.seconds / max(result.steps, 1),
        "test_accuracy": result.test_accuracy,
        "train_accuracy_last_epoch": result.train_accuracy,
        "torch_threads": torch.get_num_threads(),
        "machine": {
            "cpu_count": os.cpu_count(), "cpu_model": cpu_model(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__,
            "load_average_before": list(load_before), "load_average_after": list(load_after),
            "load_1min_samples_mean": sum(sampler.samples) / len(sampler.samples),
            "load_1min_samples_max": max(sampler.samples),
        },
    }


def markdown(r: dict) -> str:
    m = r["machine"]
    verdict = "within" if r["within_limit"] else "OVER"
    recipe = ", ".join(f"{k}={v}" for k, v in r["recipe"].items())
    return f"""# Reference training: {r['task']}

Acceptance: the default recipe finishes in <= {r['limit_seconds'] // 60} minutes on 2 CPU cores.

| | |
|---|---|
| training time | **{r['seconds']:.1f} s ({r['seconds'] / 60:.2f} min), {verdict} the {r['limit_seconds'] // 60}-minute limit** |
| CPU time of the process during training | {r['cpu_seconds']:.1f} s (all threads together) |
| with dataset import + tensors | {r['seconds_with_data']:.1f} s (import {r['import_seconds']:.1f} s) |
| steps | {r['steps']} ({r['seconds_per_step']:.3f} s/step) |
| test accuracy (all {r['dataset']['num_test']} test images) | **{r['test_accuracy']:.4f}** |
| train accuracy, last epoch (augmented) | {r['train_accuracy_last_epoch']:.4f} |
| recipe | `TrainRecipe()` defaults: {recipe} |
| dataset | {r['dataset']['num_train']} train / {r['dataset']['num_test']} test, hash `{r['dataset']['content_hash'][:16]}` |
| torch threads | {r['torch_threads']} |
| machine | {m['cpu_count']} CPUs ({m['cpu_model']}), {m['platform']}, Python {m['python']}, torch {m['torch']} |
| load average (1/5/15 min) | before {'/'.join(f'{v:.2f}' for v in m['load_average_before'])}, after {'/'.join(f'{v:.2f}' for v in m['load_average_after'])}; 1-min samples during training: mean {m['load_1min_samples_mean']:.2f}, max {m['load_1min_samples_max']:.2f} |
| date | {r['date']} |
| command | `{r['command']}` |
{_load_note(r)}{chr(10) + r['note'] + chr(10) if r.get('note') else ''}"""


def _load_note(r: dict) -> str:
    mean, cores = r["machine"]["load_1min_samples_mean"], r["machine"]["cpu_count"] or 1
    if mean <= cores:
        return ""
    return (f"\nThe machine was shared: a mean load of {mean:.1f} on {cores} cores means the training "
            "competed for CPU time, so an idle machine is likely faster than the time above. The CPU "
            f"time ({r['cpu_seconds']:.0f} s on {r['torch_threads']} thread(s)) is closer to the work itself: "
            "on an idle machine the wall time would be about that divided by the speed-up of the "
            "threads used (not measured here).\n")


def render(json_path: Path) -> None:
    """Rewrite the .md from a saved .json (no training), e.g. after changing this report's layout."""
    result = json.loads(json_path.read_text())
    (json_path.with_suffix(".md")).write_text(markdown(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, = cores)")
    parser.add_argument("--note", default=None, help="a sentence for the report (why these settings)")
    parser.add_argument("--keep", action="store_true", help="keep the dataset store and reference in bench/results/tmp/reference_training")
    parser.add_argument("--render", type=Path, default=None, metavar="JSON",
                        help="only rewrite the .md next to a saved .json; no training")
    args = parser.parse_args()
    if args.render:
        render(args.render)
        return 0
    result = run(args.threads, args.keep)
    if args.note:
        result["note"] = args.note
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reference_training.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "reference_training.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
