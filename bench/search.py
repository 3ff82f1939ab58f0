"""Search benchmark (issue 5): evolution vs random search, and the prefix cache's speed-up.

CPU protocol: ``mbv3-tiny`` on Fashion-MNIST (10k training images resized to 16x16), a
reference trained briefly with ``blockzoo.reference.train_reference``, a lazy zoo (blocks are
distilled the first time a search needs them, then persisted). Everything is cached under
``bench/results/tmp/`` so a rerun reuses the reference and the distilled blocks.

1. Quality: for each seed, evolution and random search with the same ``max_macs`` budget (the
   median MACs of random architectures) and the same number of scored architectures; the best
   proxy accuracy each finds.
2. Speed: a 1,000-evaluation evolution search; its scoring calls (one per generation) are then
   replayed twice on the same architectures with every block already distilled — once as the
   search makes them (one ``score_architectures`` call per generation: shared prefixes are
   computed once) and once from scratch (one call per architecture: nothing shared) — batch by
   batch, alternating which goes first, so both see the same machine load. The search's own
   work (sampling, repair, ranking; timed with memoised scores) is added to both.

    PYTHONPATH=. .venv/bin/python bench/search.py      # writes bench/results/search.{md,json}
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

from blockzoo.cost_model import cost
from blockzoo.data import import_builtin, open_store
from blockzoo.distill import DistillRecipe
from blockzoo.proxy import score_architectures
from blockzoo.reference import ReferenceRecipe, train_reference
from blockzoo.search import Budget, SearchResult, blockwise_cost_fn, evolution_search, search_zoo
from blockzoo.space import Architecture, get_space, sample_architectures
from blockzoo.zoo import BlockZoo

RESULTS = Path(__file__).resolve().parent / "results"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def build_zoo(args: argparse.Namespace, work: Path) -> BlockZoo:
    """The cached zoo, or a new one: Fashion-MNIST store, briefly trained reference, lazy zoo."""
    zoo_dir = work / "zoo"
    if (zoo_dir / "manifest.json").is_file():
        return BlockZoo.open(zoo_dir)
    space = get_space("mbv3-tiny")
    log("importing Fashion-MNIST")
    store = open_store(import_builtin("fashion-mnist", work / "data", train_limit=args.train_limit).path)
    reference = work / "reference.safetensors"
    recipe = ReferenceRecipe(epochs=args.reference_epochs)
    if not reference.is_file():
        log(f"training the reference ({args.reference_epochs} epochs)")
        result = train_reference(space, store, recipe, reference,
                                 progress=lambda f, m: log(f"reference: {m}") if f == 1.0 else None)
        log(f"reference test accuracy {result.test_accuracy:.4f} in {result.seconds:.0f} s")
        (work / "reference.json").write_text(json.dumps(result.to_dict(), indent=1))
    distill = DistillRecipe(batches=args.kd_batches, batch_size=args.kd_batch_size, heldout_batches=1)
    return BlockZoo.create(zoo_dir, space, store, reference, distill, reference_recipe=recipe.to_dict())


def score_fn(zoo: BlockZoo):
    def score(archs: list[Architecture]) -> list[float]:
        return [s.proxy_accuracy for s in score_architectures(zoo, archs)]
    return score


def compare(zoo: BlockZoo, budget: Budget, args: argparse.Namespace) -> dict:
    runs = {"evolution": [], "random": []}
    for seed in range(args.seeds):
        for strategy in ("evolution", "random"):
            before = zoo.distilled_count
            started = time.perf_counter()
            result = search_zoo(zoo, budget, strategy, seed=seed, population=args.population,
                                generations=10_000, max_evaluations=args.evaluations, top_k=5)
            seconds = time.perf_counter() - started
            assert all(p.macs <= budget.max_macs for p in result.candidates)
            runs[strategy].append({
                "seed": seed, "best": result.best.score, "best_arch": result.best.arch.id,
                "best_macs": result.best.macs, "evaluated": result.evaluated, "seconds": round(seconds, 1),
                "blocks_distilled": zoo.distilled_count - before,
                "best_by_evaluations": [[g.evaluated, g.best_score] for g in result.history],
            })
            log(f"seed {seed} {strategy}: best {result.best.score:.4f} ({result.best.arch.id}, "
                f"{result.best.macs:,} MACs) after {result.evaluated} in {seconds:.0f} s")
    return runs


def generation_batches(result: SearchResult) -> list[list[Architecture]]:
    """The search's scoring calls: candidates are in scoring order, history says how many per call."""
    batches, start = [], 0
    for generation in result.history:
        batches.append([p.arch for p in result.candidates[start:start + generation.new]])
        start += generation.new
    return batches


def levels_computed(batch: list[Architecture], num_stages: int) -> int:
    """Prefix + stage levels the prefix cache computes for one call (heads excluded)."""
    ordered = sorted(batch, key=lambda a: a.expand)
    total = 1 + num_stages  # the first architecture: prefix and every stage
    for prev, arch in zip(ordered, ordered[1:]):
        shared = 0
        while shared < num_stages and prev.expand[shared] == arch.expand[shared]:
            shared += 1
        total += num_stages - shared
    return total


def speed(zoo: BlockZoo, budget: Budget, args: argparse.Namespace) -> dict:
    space = zoo.space
    cost_fn = blockwise_cost_fn(space, zoo.in_channels, zoo.num_classes)
    before = zoo.distilled_count
    started = time.perf_counter()
    result = evolution_search(space, score_fn(zoo), budget, cost_fn, seed=args.speed_seed,
                              population=args.speed_population, generations=10_000,
                              max_evaluations=args.speed_evaluations)
    first_run = time.perf_counter() - started
    log(f"{result.evaluated}-evaluation evolution search (distilling {zoo.distilled_count - before} blocks) "
        f"in {first_run:.0f} s; best {result.best.score:.4f}")
    batches = generation_batches(result)
    assert sum(map(len, batches)) == result.evaluated == args.speed_evaluations

    # The search's own work, with every score memoised (a dict lookup).
    known = {p.arch: p.score for p in result.candidates}
    started = time.perf_counter()
    again = evolution_search(space, lambda archs: [known[a] for a in archs], budget, cost_fn,
                             seed=args.speed_seed, population=args.speed_population, generations=10_000,
                             max_evaluations=args.speed_evaluations)
    overhead = time.perf_counter() - started
    assert [p.arch for p in again.candidates] == [p.arch for p in result.candidates]

    cached_s = scratch_s = 0.0
    mismatches = 0
    for n, batch in enumerate(batches):
        def cached() -> list[float]:
            return [s.proxy_accuracy for s in score_architectures(zoo, batch)]

        def scratch() -> list[float]:
            return [score_architectures(zoo, [a])[0].proxy_accuracy for a in batch]

        order = (cached, scratch) if n % 2 == 0 else (scratch, cached)
        for fn in order:
            t0 = time.perf_counter()
            values = fn()
            elapsed = time.perf_counter() - t0
            if fn is cached:
                cached_s += elapsed
                cached_values = values
            else:
                scratch_s += elapsed
                scratch_values = values
        mismatches += sum(a != b for a, b in zip(cached_values, scratch_values))
        log(f"generation {n}: {len(batch)} architectures, prefix cache {cached_s:.0f} s, "
            f"from scratch {scratch_s:.0f} s so far")
    levels = sum(levels_computed(b, space.num_stages) for b in batches)
    return {
        "evaluations": result.evaluated,
        "population": args.speed_population,
        "generations": len(batches),
        "seed": args.speed_seed,
        "best": result.best.score,
        "first_run_seconds_with_distillation": round(first_run, 1),
        "search_overhead_seconds": round(overhead, 2),
        "scoring_seconds_prefix_cache": round(cached_s, 1),
        "scoring_seconds_from_scratch": round(scratch_s, 1),
        "search_seconds_prefix_cache": round(overhead + cached_s, 1),
        "search_seconds_from_scratch": round(overhead + scratch_s, 1),
        "prefix_speedup": (overhead + scratch_s) / (overhead + cached_s),
        "levels_per_architecture_prefix_cache": levels / result.evaluated,
        "levels_per_architecture_from_scratch": 1 + space.num_stages,
        "score_mismatches": mismatches,
    }


def write_markdown(out: dict, path: Path) -> None:
    evo, rnd = out["evolution_best"], out["random_best"]
    s, cfg = out["speed"], out["config"]
    lines = [
        "# Search benchmark: evolution vs random search, prefix cache (`mbv3-tiny`, Fashion-MNIST, CPU)",
        "",
        f"Command: `{out['command'].strip()}`",
        "",
        f"Machine: {out['machine']}; load average at start {out['load_average']} (2 cores shared with other "
        f"jobs: absolute seconds are inflated, ratios are measured on the same work in the same minutes). "
        f"Total wall time {out['total_minutes']:.0f} min.",
        "",
        "Setup: Fashion-MNIST, "
        f"{cfg['train_limit']} training images at 16x16; reference trained {cfg['reference_epochs']} epochs "
        f"(test accuracy {out['reference_test_accuracy']}); lazy zoo, KD with T={cfg['kd_batches']} batches of "
        f"{cfg['kd_batch_size']} (smaller than the paper's 20x64 so the benchmark fits the shared CPU); "
        f"proxy = accuracy on the KD batches after BN recalibration. Budget: max_macs = "
        f"{out['budget']['max_macs']:,} (median MACs of 1,000 random architectures).",
        "",
        f"## Evolution vs random search ({cfg['evaluations']} scored architectures each, {cfg['seeds']} seeds)",
        "",
        f"Both with population {cfg['population']}; evolution: parents 25%, mutation 50% / crossover 50%, "
        "mutate_prob 0.1 ramped towards later stages, whole-block crossover (the `evolution_search` defaults).",
        "",
        "| seed | evolution best | random best |",
        "|---|---|---|",
    ]
    lines += [f"| {i} | {e:.4f} | {r:.4f} |" for i, (e, r) in enumerate(zip(evo, rnd))]
    lines += [
        f"| **median** | **{statistics.median(evo):.4f}** | **{statistics.median(rnd):.4f}** |",
        "",
        f"Evolution's best beats random search's in {sum(e > r for e, r in zip(evo, rnd))} of {len(evo)} seeds "
        f"(ties: {sum(e == r for e, r in zip(evo, rnd))}).",
        "",
        f"## Prefix cache ({s['evaluations']}-evaluation evolution search)",
        "",
        f"Evolution with population {s['population']} ({s['generations']} scoring calls, one per generation), "
        f"seed {s['seed']}, same budget. The same {s['evaluations']} architectures scored with the prefix cache "
        "(one `score_architectures` call per generation, as the search does) and from scratch (one call per "
        "architecture), interleaved batch by batch; plus the search's own work "
        f"({s['search_overhead_seconds']} s) in both.",
        "",
        "| | prefix cache | from scratch |",
        "|---|---|---|",
        f"| scoring seconds | {s['scoring_seconds_prefix_cache']} | {s['scoring_seconds_from_scratch']} |",
        f"| search seconds | {s['search_seconds_prefix_cache']} | {s['search_seconds_from_scratch']} |",
        f"| prefix/stage levels computed per architecture | {s['levels_per_architecture_prefix_cache']:.2f} | "
        f"{s['levels_per_architecture_from_scratch']} |",
        "",
        f"**prefix_speedup = {out['prefix_speedup']:.2f}x**. Scores identical both ways: "
        f"{'yes' if s['score_mismatches'] == 0 else 'NO (' + str(s['score_mismatches']) + ' differ)'}. "
        "The first run of that search, distilling its missing blocks, took "
        f"{s['first_run_seconds_with_distillation']} s.",
        "",
        "Raw numbers: `search.json`.",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--evaluations", type=int, default=200, help="scored architectures per search")
    parser.add_argument("--population", type=int, default=25)
    parser.add_argument("--speed-evaluations", type=int, default=1000)
    parser.add_argument("--speed-population", type=int, default=100)
    parser.add_argument("--speed-seed", type=int, default=100)
    parser.add_argument("--train-limit", type=int, default=10_000)
    parser.add_argument("--reference-epochs", type=float, default=3)
    parser.add_argument("--kd-batches", type=int, default=10)
    parser.add_argument("--kd-batch-size", type=int, default=32)
    parser.add_argument("--work", type=Path, default=RESULTS / "tmp" / "search")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--render", action="store_true", help="only rewrite search.md from search.json")
    args = parser.parse_args(argv)
    if args.render:
        out = json.loads((args.out / "search.json").read_text())
        write_markdown(out, args.out / "search.md")
        return out
    torch.set_num_threads(1)  # 2 shared cores: one intra-op thread avoids spin-wait contention
    load_average = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    zoo = build_zoo(args, args.work)
    space = zoo.space
    macs = [cost(space, a, zoo.in_channels, zoo.num_classes).macs for a in sample_architectures(space, 1000, 0)]
    budget = Budget(max_macs=int(statistics.median(macs)))
    log(f"budget {budget}")
    runs = compare(zoo, budget, args)
    speed_result = speed(zoo, budget, args)
    reference = args.work / "reference.json"
    out = {
        "command": " ".join(["PYTHONPATH=. .venv/bin/python bench/search.py",
                             *(sys.argv[1:] if argv is None else argv)]),
        "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}, 1 intra-op thread",
        "load_average": load_average,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "reference_test_accuracy": (round(json.loads(reference.read_text())["test_accuracy"], 4)
                                    if reference.is_file() else None),
        "budget": budget.to_dict(),
        "evolution_best": [r["best"] for r in runs["evolution"]],
        "random_best": [r["best"] for r in runs["random"]],
        "prefix_speedup": speed_result["prefix_speedup"],
        "runs": runs,
        "speed": speed_result,
        "total_minutes": (time.perf_counter() - started) / 60,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "search.json").write_text(json.dumps(out, indent=1))
    write_markdown(out, args.out / "search.md")
    log(f"evolution median {statistics.median(out['evolution_best']):.4f}, random median "
        f"{statistics.median(out['random_best']):.4f}, prefix speedup {out['prefix_speedup']:.2f}x")
    return out


if __name__ == "__main__":
    main()
