"""Search benchmark (issue 5): evolution vs random search, and the prefix cache's speed-up.

CPU protocol: ``mbv3-tiny`` on Fashion-MNIST (10k training images resized to 16x16), a
reference trained briefly with ``blockzoo.reference.train_reference``, a lazy zoo (blocks are
distilled the first time a search needs them, then persisted). Everything is cached under
``bench/results/tmp/`` so a rerun reuses the reference and the distilled blocks.

1. Quality (``--part quality``): for each seed, evolution and random search (``search_zoo``)
   with the same ``max_macs`` budget (the median MACs of random architectures) and the same
   number of scored architectures; the best proxy accuracy each finds.
2. Speed (``--part speed``): a 1,000-evaluation evolution search (``search_zoo``); its scoring
   calls (one per generation) are then replayed twice on the same architectures with every
   block already distilled — once as the search makes them (one ``score_architectures`` call
   per generation, all sharing one new ``PrefixCache``: a prefix of blocks is computed once
   per search) and once from scratch (one call per architecture, each with its own new cache,
   i.e. nothing shared between architectures) — batch by batch, alternating which goes first,
   so both see the same machine load. The search's own work (sampling, repair, ranking; timed
   with memoised scores) is added to both.

    .venv/bin/python -m bench.search      # writes bench/results/search.{md,json}

``--part quality`` or ``--part speed`` runs one part and merges it into an existing
``search.json`` (same budget and zoo settings required); ``search.md`` records each part's
command.
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

from blockzoo.allocator import keep_freed_memory
from blockzoo.cost_model import cost
from blockzoo.data import import_builtin, open_store
from blockzoo.distill import DistillRecipe
from blockzoo.proxy import PrefixCache, score_architectures
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


def compare(zoo: BlockZoo, budget: Budget, args: argparse.Namespace) -> dict:
    runs = {"evolution": [], "random": []}
    for seed in range(args.seeds):
        for strategy in ("evolution", "random"):
            before = zoo.distilled_count
            cache = PrefixCache()
            started = time.perf_counter()
            result = search_zoo(zoo, budget, strategy, seed=seed, population=args.population,
                                generations=10_000, max_evaluations=args.evaluations, top_k=5,
                                prefix_cache=cache)
            seconds = time.perf_counter() - started
            assert all(p.macs <= budget.max_macs for p in result.candidates)
            runs[strategy].append({
                "seed": seed, "best": result.best.score, "best_arch": result.best.arch.id,
                "best_macs": result.best.macs, "evaluated": result.evaluated, "seconds": round(seconds, 1),
                "blocks_distilled": zoo.distilled_count - before,
                "levels_per_architecture": cache.computed / result.evaluated,
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


def levels_within_call(batch: list[Architecture], num_stages: int) -> int:
    """Stem + stage levels one call computes when nothing is kept between calls (heads excluded)."""
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
    result = search_zoo(zoo, budget, "evolution", seed=args.speed_seed, population=args.speed_population,
                        generations=10_000, max_evaluations=args.speed_evaluations)
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

    cache = PrefixCache()  # one per search, default bound, as search_zoo makes it
    scratch_levels = 0
    cached_s = scratch_s = 0.0
    mismatches = 0
    for n, batch in enumerate(batches):
        def cached() -> list[float]:
            return [s.proxy_accuracy for s in score_architectures(zoo, batch, cache=cache)]

        def scratch() -> list[float]:
            nonlocal scratch_levels
            values = []
            for a in batch:
                own = PrefixCache()  # a new cache per architecture (= no cache): nothing shared
                values.append(score_architectures(zoo, [a], cache=own)[0].proxy_accuracy)
                scratch_levels += own.computed
            return values

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
    within = sum(levels_within_call(b, space.num_stages) for b in batches)
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
        "levels_per_architecture_prefix_cache": cache.computed / result.evaluated,
        "levels_per_architecture_from_scratch": scratch_levels / result.evaluated,
        "levels_per_architecture_within_generation_only": within / result.evaluated,
        "prefix_cache": cache.stats(),
        "score_mismatches": mismatches,
    }


def write_markdown(out: dict, path: Path) -> None:
    evo, rnd = out["evolution_best"], out["random_best"]
    s, zs, parts = out["speed"], out["zoo_settings"], out["parts"]
    q, sp = parts["quality"]["config"], parts["speed"]["config"]
    c = s["prefix_cache"]
    mib = 2**20
    lines = [
        "# Search benchmark: evolution vs random search, prefix cache (`mbv3-tiny`, Fashion-MNIST, CPU)",
        "",
        "Commands (each part writes its results into `search.json`; both parts use one zoo, built on the first "
        "run and cached under `bench/results/tmp/search`):",
        "",
    ]
    for name, part in parts.items():
        lines.append(f"- {name}: `{part['command'].strip()}` — {part['minutes']:.0f} min, load average "
                     f"{part['load_average_at_start']} at start, {part['load_average_at_end']} at end")
    lines += [
        "",
        f"Machine: {out['machine']} (2 cores shared with other jobs: absolute seconds are inflated, ratios "
        "are measured on the same work in the same minutes).",
        "",
        "Setup: Fashion-MNIST, "
        f"{zs['train_limit']} training images at 16x16; reference trained {zs['reference_epochs']} epochs "
        f"(test accuracy {out['reference_test_accuracy']}); lazy zoo, KD with T={zs['kd_batches']} batches of "
        f"{zs['kd_batch_size']} (smaller than the paper's 20x64 so the benchmark fits the shared CPU); "
        f"proxy = accuracy on the KD batches after BN recalibration. Budget: max_macs = "
        f"{out['budget']['max_macs']:,} (median MACs of 1,000 random architectures).",
        "",
        f"## Evolution vs random search ({q['evaluations']} scored architectures each, {q['seeds']} seeds)",
        "",
        f"Both `search_zoo` with population {q['population']}; evolution: parents 25%, mutation 50% / "
        "crossover 50%, mutate_prob 0.1 ramped towards later stages, whole-block crossover (the "
        "`evolution_search` defaults).",
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
        f"Evolution (`search_zoo`) with population {sp['speed_population']} ({s['generations']} scoring calls, "
        f"one per generation), seed {sp['speed_seed']}, same budget; its first run (with the prefix cache, "
        f"distilling any block the zoo still lacked) took {s['first_run_seconds_with_distillation']} s. Then, "
        "with every block "
        f"distilled, its {s['evaluations']} architectures are scored twice, interleaved generation by "
        "generation (alternating which goes first):",
        "",
        "- **prefix cache**: as the search scores them — one `score_architectures` call per generation, all "
        "calls sharing one new `PrefixCache` (default bound "
        f"{c['max_bytes'] / mib:.0f} MiB, least recently used out). What it keeps: *levels*, i.e. the "
        "features after the stem and after stages 1..m of an architecture (the recalibration outputs of "
        "the T KD batches, the evaluation outputs of the KD and held-out batches), keyed by the zoo, the "
        "recalibration flag and the block codes of stages 1..m. A level after the last stage (a whole "
        "architecture) is not kept; the head is computed for every architecture.",
        "- **from scratch**: one `score_architectures` call per architecture, each with its own new cache "
        "(the same as no cache): nothing is shared between architectures; the stem and all stages are "
        "computed for each.",
        "",
        f"Both also pay the search's own work (sampling, repair, ranking: {s['search_overhead_seconds']} s, "
        "timed with memoised scores). Not cached in either: the distilled blocks are in the zoo's in-memory "
        "block cache for both, and the KD batches are loaded once.",
        "",
        "| | prefix cache | from scratch |",
        "|---|---|---|",
        f"| scoring seconds | {s['scoring_seconds_prefix_cache']} | {s['scoring_seconds_from_scratch']} |",
        f"| search seconds (scoring + search's own work) | {s['search_seconds_prefix_cache']} | "
        f"{s['search_seconds_from_scratch']} |",
        f"| stem/stage levels computed per architecture (counted) | "
        f"{s['levels_per_architecture_prefix_cache']:.2f} | {s['levels_per_architecture_from_scratch']:.2f} |",
        "",
        f"**prefix_speedup = {out['prefix_speedup']:.2f}x** (search seconds from scratch / with the prefix "
        "cache). Scores identical both ways: "
        f"{'yes' if s['score_mismatches'] == 0 else 'NO (' + str(s['score_mismatches']) + ' differ)'}.",
        "",
        f"Cache: {c['computed']:,} levels computed, {c['reused']:,} taken from the cache, {c['evicted']:,} evicted, "
        f"peak {c['peak_bytes'] / mib:.0f} MiB. Sharing only within a generation's call (no cache between "
        f"calls, as before the cache) would compute {s['levels_per_architecture_within_generation_only']:.2f} "
        "levels per architecture (counted from the same batches).",
        "",
        "## Issue 5 acceptance",
        "",
        f"- (a) evolution's median best > random search's at {q['evaluations']} evaluations: "
        f"{'met' if statistics.median(evo) > statistics.median(rnd) else 'NOT met'} "
        f"({statistics.median(evo):.4f} vs {statistics.median(rnd):.4f}).",
        f"- (b) prefix cache >= 2x faster than from scratch on a {s['evaluations']}-evaluation search: "
        f"{'met' if out['prefix_speedup'] >= 2 else 'NOT met'} ({out['prefix_speedup']:.2f}x).",
        "",
        "Raw numbers: `search.json`.",
        "",
    ]
    path.write_text("\n".join(lines))


ZOO_SETTINGS = ("train_limit", "reference_epochs", "kd_batches", "kd_batch_size")
QUALITY = ("seeds", "evaluations", "population")
SPEED = ("speed_evaluations", "speed_population", "speed_seed")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("all", "quality", "speed"), default="all",
                        help="run one part and merge it into an existing search.json")
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
    path = args.out / "search.json"
    if args.render:
        out = json.loads(path.read_text())
        write_markdown(out, args.out / "search.md")
        return out
    settings = {k: getattr(args, k) for k in ZOO_SETTINGS}
    out: dict = {}
    if args.part != "all":
        out = json.loads(path.read_text()) if path.is_file() else {}
        if out and out.get("zoo_settings") != settings:
            raise SystemExit(f"{path} was made with other zoo settings ({out.get('zoo_settings')}); "
                             "rerun with --part all or the same settings")
    keep_freed_memory()  # as the worker and the CLI do (blockzoo/allocator.py)
    torch.set_num_threads(1)  # 2 shared cores: one intra-op thread avoids spin-wait contention
    args.work.mkdir(parents=True, exist_ok=True)
    zoo = build_zoo(args, args.work)
    space = zoo.space
    macs = [cost(space, a, zoo.in_channels, zoo.num_classes).macs for a in sample_architectures(space, 1000, 0)]
    budget = Budget(max_macs=int(statistics.median(macs)))
    log(f"budget {budget}")
    reference = args.work / "reference.json"
    out.update({
        "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}, 1 intra-op thread",
        "zoo_settings": settings,
        "reference_test_accuracy": (round(json.loads(reference.read_text())["test_accuracy"], 4)
                                    if reference.is_file() else None),
        "budget": budget.to_dict(),
    })
    command = " ".join([".venv/bin/python -m bench.search", *(sys.argv[1:] if argv is None else argv)])
    parts = out.setdefault("parts", {})
    for part in ("quality", "speed"):
        if args.part not in ("all", part):
            continue
        load_average = [round(x, 2) for x in os.getloadavg()]
        started = time.perf_counter()
        if part == "quality":
            runs = compare(zoo, budget, args)
            out.update({"evolution_best": [r["best"] for r in runs["evolution"]],
                        "random_best": [r["best"] for r in runs["random"]], "runs": runs})
        else:
            out["speed"] = speed(zoo, budget, args)
            out["prefix_speedup"] = out["speed"]["prefix_speedup"]
        parts[part] = {"command": command, "load_average_at_start": load_average,
                       "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                       "minutes": round((time.perf_counter() - started) / 60, 1),
                       "config": {k: getattr(args, k) for k in (QUALITY if part == "quality" else SPEED)}}
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=1))  # after each part: a finished part is kept
    if "evolution_best" in out and "speed" in out:
        write_markdown(out, args.out / "search.md")
        log(f"evolution median {statistics.median(out['evolution_best']):.4f}, random median "
            f"{statistics.median(out['random_best']):.4f}, prefix speedup {out['prefix_speedup']:.2f}x")
    return out


if __name__ == "__main__":
    main()
