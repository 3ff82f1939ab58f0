"""Issue 3 acceptance: the BlockZoo proxy costs <= 2 s per architecture on 2 CPU cores at T = 20
for `mbv3-tiny` once the zoo holds its blocks.

Setup: `mbv3-tiny` (16x16) on the Fashion-MNIST 10k subset with the reference that
`python -m bench.reference_training --keep` leaves in `bench/results/tmp/reference_training/` (trained
here with the default recipe if missing), a zoo with the default `DistillRecipe` (T = 20 batches
of 64, PR + KD), and K random architectures (`space.sample(random.Random(seed))`, the
reference excluded). The blocks they need are distilled first (timed, reported, not part of the
proxy cost); then, with every block on disk, for each repeat:

* **one call**: `score_architectures(zoo, archs)` on a freshly opened zoo (blocks read from
  disk), as a search or the API's batch scoring does: shared prefixes are computed once;
* **one by one**: `score_architectures(zoo, [arch])` per architecture on a freshly opened zoo
  each time: no sharing at all, the cost a single `POST /v1/zoos/{id}/scores` of one
  architecture pays.

Seconds per architecture = wall time / K. The load average is sampled around each pass; the
machine may be shared, so the report shows it next to the times.

    .venv/bin/python -m bench.proxy_cost [--threads 2] [--k 40] [--repeats 2] [--reference F]

``--reference`` takes any trained `mbv3-tiny` reference instead (e.g. the one `bench/search.py`
trains): the proxy's cost depends on the shapes, not on the weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from blockzoo.allocator import keep_freed_memory
from blockzoo.data import import_builtin, open_store
from blockzoo.distill import DistillRecipe
from blockzoo.proxy import score_architectures
from blockzoo.reference import train_reference
from blockzoo.space import get_space
from blockzoo.training import TrainRecipe
from blockzoo.zoo import BlockZoo

RESULTS = Path(__file__).resolve().parent / "results"
TMP = RESULTS / "tmp"
TARGET_SECONDS = 2.0


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sample_archs(space, k: int, seed: int):
    rng, archs = random.Random(seed), []
    while len(archs) < k:
        arch = space.sample(rng)
        if arch != space.reference and arch not in archs:
            archs.append(arch)
    return archs


def open_zoo(space, recipe: DistillRecipe, reference: Path) -> BlockZoo:
    root = TMP / "proxy_cost" / "zoo"
    if (root / "manifest.json").is_file():
        return BlockZoo.open(root)
    store = open_store(import_builtin("fashion-mnist", TMP / "reference_training" / "datasets",
                                      seed=0, train_limit=10_000).path)
    if not reference.is_file():
        log("training the reference (default recipe; run `python -m bench.reference_training --keep` to reuse its)")
        train_reference(space, store, TrainRecipe(), reference)
    return BlockZoo.create(root, space, store, reference, recipe)


def timed_pass(fn) -> dict:
    load0 = os.getloadavg()[0]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    fn()
    return {"wall": time.perf_counter() - wall0, "cpu": time.process_time() - cpu0,
            "load_before": load0, "load_after": os.getloadavg()[0]}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--k", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--reference", type=Path, default=TMP / "reference_training" / "reference.safetensors",
                        help="an mbv3-tiny reference (the cost does not depend on its weights); "
                             "trained with the default recipe if missing")
    args = parser.parse_args()
    keep_freed_memory()  # as the worker and the CLI do (blockzoo/allocator.py)
    torch.set_num_threads(args.threads)
    space = get_space("mbv3-tiny")
    recipe = DistillRecipe()
    zoo = open_zoo(space, recipe, args.reference)
    archs = sample_archs(space, args.k, args.seed)

    missing = sum(len(v) for v in zoo.missing_blocks(archs).values())
    log(f"distilling the {missing} missing blocks of {args.k} architectures")
    distill = timed_pass(lambda: zoo.ensure_blocks(archs))

    passes: dict[str, list[dict]] = {"one_call": [], "one_by_one": []}
    scores = {}
    for r in range(args.repeats):
        order = ("one_call", "one_by_one") if r % 2 == 0 else ("one_by_one", "one_call")
        for kind in order:
            if kind == "one_call":
                def run() -> None:
                    for s in score_architectures(BlockZoo.open(zoo.root), archs):
                        scores.setdefault(s.arch_id, s.proxy_accuracy)
            else:
                def run() -> None:
                    for arch in archs:
                        [s] = score_architectures(BlockZoo.open(zoo.root), [arch])
                        assert s.proxy_accuracy == scores.get(s.arch_id, s.proxy_accuracy)
            result = timed_pass(run)
            passes[kind].append(result)
            log(f"repeat {r + 1} {kind}: {result['wall'] / args.k:.3f} s/arch (load {result['load_before']:.2f})")

    def per_arch(kind: str, key: str) -> float:
        return min(p[key] for p in passes[kind]) / args.k

    out = {
        "target_seconds_per_arch": TARGET_SECONDS,
        "seconds_per_arch_one_call": per_arch("one_call", "wall"),
        "seconds_per_arch_one_by_one": per_arch("one_by_one", "wall"),
        "cpu_seconds_per_arch_one_call": per_arch("one_call", "cpu"),
        "cpu_seconds_per_arch_one_by_one": per_arch("one_by_one", "cpu"),
        "passes": passes, "k": args.k, "arch_seed": args.seed, "threads": args.threads,
        "reference": os.path.relpath(args.reference, RESULTS.parent.parent),
        "recipe": zoo.recipe.to_dict(), "space": space.name, "input_size": space.input_size,
        "blocks_distilled": missing, "distill": distill,
        "proxy_accuracy": {"min": min(scores.values()), "max": max(scores.values()),
                           "mean": sum(scores.values()) / len(scores)},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": ".venv/bin/python -m bench.proxy_cost " + " ".join(sys.argv[1:]),
    }
    (RESULTS / "proxy_cost.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "proxy_cost.md").write_text(markdown(out))
    log(f"one call {out['seconds_per_arch_one_call']:.3f} s/arch, one by one "
        f"{out['seconds_per_arch_one_by_one']:.3f} s/arch (target {TARGET_SECONDS} s)")
    return out


def markdown(o: dict) -> str:
    ok = lambda v: "within" if v <= o["target_seconds_per_arch"] else "**above**"  # noqa: E731
    loads = [p["load_before"] for ps in o["passes"].values() for p in ps]
    lines = [
        "# Proxy cost: BlockZoo proxy seconds per architecture (`mbv3-tiny`, T = 20, CPU)", "",
        f"Command: `{o['command']}` ({o['date']}). Issue 3's target: at most "
        f"{o['target_seconds_per_arch']:.0f} s per architecture on 2 CPU cores once the zoo holds its blocks.", "",
        "| | wall s / arch (best of repeats) | CPU s / arch | vs target |",
        "|---|---|---|---|",
        f"| {o['k']} architectures in one call (shared prefixes computed once) | "
        f"**{o['seconds_per_arch_one_call']:.3f}** | {o['cpu_seconds_per_arch_one_call']:.3f} | "
        f"{ok(o['seconds_per_arch_one_call'])} |",
        f"| one architecture per call (nothing shared) | **{o['seconds_per_arch_one_by_one']:.3f}** | "
        f"{o['cpu_seconds_per_arch_one_by_one']:.3f} | {ok(o['seconds_per_arch_one_by_one'])} |", "",
        f"Each pass opens the zoo afresh (blocks read from disk), recalibrates BN on the T = "
        f"{o['recipe']['batches']} KD batches of {o['recipe']['batch_size']} and measures accuracy on them and on "
        f"{o['recipe']['heldout_batches']} held-out batches. {o['k']} random architectures (seed {o['arch_seed']}); "
        f"proxy accuracy {o['proxy_accuracy']['min']:.3f}–{o['proxy_accuracy']['max']:.3f}. "
        f"Every pass (repeat × kind, alternating order): "
        + "; ".join(f"{kind} {p['wall'] / o['k']:.3f}" for kind, ps in o["passes"].items() for p in ps) + " s/arch.",
        "",
        f"Not part of the proxy cost: distilling the {o['blocks_distilled']} blocks these architectures "
        f"needed took {o['distill']['wall']:.1f} s (once; lazily, stacked engine).", "",
        f"Machine: {o['machine']['cpu_count']} CPUs, {o['machine']['platform']}, Python {o['machine']['python']}, "
        f"torch {o['machine']['torch']}, {o['threads']} torch threads; 1-minute load average before the passes "
        f"{min(loads):.2f}–{max(loads):.2f}.", "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
