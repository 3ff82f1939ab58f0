"""How much could a better prefix cache save? Replays a search's scoring calls through cache models.

Issue 5 asks the prefix cache to make a 1,000-evaluation search >= 2x faster than scoring each
architecture from scratch. This script asks what bounds that: the cache's size and eviction
policy, or the search's own sharing. It runs `bench/search.py`'s speed search (same zoo, budget,
seed and population; the zoo must exist, run `python -m bench.search` first), then replays the
generations' scoring calls through a *model* of `score_architectures` + `PrefixCache` that
counts the stem/stage levels each policy computes (no tensors; level sizes are measured once
per depth on the real zoo). The model is checked against the real cache: with the default
bound and LRU it must count exactly the levels the search's real `PrefixCache` computed.

Policies: LRU at several bounds (the real cache's policy), unbounded (the most any eviction
policy can reach), GreedyDual-Size (evicts the lowest recompute-cost / bytes, aged; a
cost-aware alternative to LRU), and no cache between calls (sharing within a generation only).
A level's recompute cost is the sum of its stages' per-level seconds, measured on the real
zoo (mean over the search's architectures).

    .venv/bin/python -m bench.prefix_cache_policies   # writes bench/results/prefix_cache_policies.{md,json}
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import torch

from blockzoo.allocator import keep_freed_memory
from blockzoo.cost_model import cost
from blockzoo.proxy import DEFAULT_CACHE_BYTES, PrefixCache, score_architectures
from blockzoo.search import Budget, search_zoo
from blockzoo.space import Architecture, sample_architectures
from blockzoo.zoo import BlockZoo

from bench import search as search_bench

RESULTS = Path(__file__).resolve().parent / "results"
MIB = 2**20



class CacheModel:
    """Keys and sizes only. ``policy``: "lru" or "gds" (GreedyDual-Size); ``max_bytes`` None = unbounded."""

    def __init__(self, policy: str, max_bytes: int | None, size: Callable[[tuple], int],
                 recompute: Callable[[tuple], float]) -> None:
        self.policy, self.max_bytes, self.size, self.recompute = policy, max_bytes, size, recompute
        self.entries: OrderedDict[tuple, float] = OrderedDict()  # key -> GDS priority (LRU: order)
        self.nbytes, self.age = 0, 0.0

    def _priority(self, key: tuple) -> float:
        return self.age + self.recompute(key) / self.size(key)

    def get(self, key: tuple) -> bool:
        if key not in self.entries:
            return False
        self.entries.move_to_end(key)
        self.entries[key] = self._priority(key)
        return True

    def put(self, key: tuple) -> None:
        if key in self.entries or (self.max_bytes is not None and self.size(key) > self.max_bytes):
            return
        self.entries[key] = self._priority(key)
        self.nbytes += self.size(key)
        while self.max_bytes is not None and self.nbytes > self.max_bytes:
            if self.policy == "lru":
                old, _ = self.entries.popitem(last=False)
            else:
                old = min(self.entries, key=self.entries.__getitem__)
                self.age = self.entries.pop(old)
            self.nbytes -= self.size(old)


def replay(batches: list[list[Architecture]], num_stages: int, cache: CacheModel | None) -> list[int]:
    """Levels computed per depth (0 = stem) when ``score_architectures`` scores each batch in one
    call sharing ``cache`` (None: a new cache per call). Mirrors its lexicographic order, its
    stack of the current prefix, its shallow-to-deep lookups and its puts (never a whole
    architecture's level)."""
    computed = [0] * (num_stages + 1)
    for batch in batches:
        calls_cache = cache or CacheModel("lru", None, lambda k: 1, lambda k: 1.0)
        if not calls_cache.get(()):  # the stem (the reference's prefix): looked up once per call
            computed[0] += 1
            calls_cache.put(())
        stack: list[tuple] = [()]
        for arch in sorted(dict.fromkeys(batch), key=lambda a: a.expand):
            shared = 0
            while shared + 1 < len(stack) and stack[shared + 1] == arch.expand[:shared + 1]:
                shared += 1
            del stack[shared + 1:]
            for m in range(shared, num_stages):
                key = arch.expand[:m + 1]
                if not calls_cache.get(key):
                    computed[m + 1] += 1
                    if m + 1 < num_stages:
                        calls_cache.put(key)
                stack.append(key)
    return computed


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=RESULTS / "tmp" / "search")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--evaluations", type=int, default=1000)
    parser.add_argument("--population", type=int, default=100)
    parser.add_argument("--seed", type=int, default=100)
    args = parser.parse_args(argv)
    if not (args.work / "zoo" / "manifest.json").is_file():
        raise SystemExit(f"no zoo under {args.work}: run `python -m bench.search` first")
    keep_freed_memory()
    torch.set_num_threads(1)
    zoo = BlockZoo.open(args.work / "zoo")
    space = zoo.space
    macs = [cost(space, a, zoo.in_channels, zoo.num_classes).macs for a in sample_architectures(space, 1000, 0)]
    budget = Budget(max_macs=int(statistics.median(macs)))  # as bench/search.py
    real = PrefixCache()
    result = search_zoo(zoo, budget, "evolution", seed=args.seed, population=args.population,
                        generations=10_000, max_evaluations=args.evaluations, prefix_cache=real)
    batches = search_bench.generation_batches(result)
    archs = [a for b in batches for a in b]
    n = len(archs)

    # Level sizes per depth (they depend on the depth only) and per-level seconds per depth,
    # both measured on the real zoo: every architecture of the search scored alone, each level timed.
    import blockzoo.proxy as proxy
    seconds = [[] for _ in range(space.num_stages + 1)]
    sizes: dict[int, int] = {}
    run = proxy._run

    def timed(module, prev, key, group_size):
        started = time.perf_counter()
        level = run(module, prev, key, group_size)
        if key != ("head",):
            seconds[len(key)].append(time.perf_counter() - started)
            sizes.setdefault(len(key), level.nbytes)
        return level

    proxy._run = timed
    try:
        for arch in archs[:: max(1, n // 200)]:  # 200 of them: enough for a mean per depth
            score_architectures(zoo, [arch], cache=PrefixCache())
    finally:
        proxy._run = run
    per_level = [statistics.mean(s) for s in seconds]

    def size(key: tuple) -> int:
        return sizes[len(key)]

    def recompute(key: tuple) -> float:
        return sum(per_level[: len(key) + 1])

    rows = []

    def add(name: str, cache: CacheModel | None) -> None:
        computed = replay(batches, space.num_stages, cache)
        seconds_per_arch = sum(c * s for c, s in zip(computed, per_level)) / n
        rows.append({"policy": name, "levels_per_architecture": sum(computed) / n,  # stem included, as bench/search.py
                     "levels_by_depth": computed, "modelled_level_seconds_per_architecture": seconds_per_arch})

    add("no cache between calls (within a generation only)", None)
    for mib in (256, 512, DEFAULT_CACHE_BYTES // MIB, 2048):
        add(f"LRU, {mib} MiB", CacheModel("lru", mib * MIB, size, recompute))
    add(f"GreedyDual-Size, {DEFAULT_CACHE_BYTES // MIB} MiB", CacheModel("gds", DEFAULT_CACHE_BYTES, size, recompute))
    add("unbounded", CacheModel("lru", None, size, recompute))
    scratch = sum(per_level) * n
    for row in rows:
        row["modelled_speedup_vs_scratch"] = scratch / n / row["modelled_level_seconds_per_architecture"]

    default = next(r for r in rows if r["policy"] == f"LRU, {DEFAULT_CACHE_BYTES // MIB} MiB")
    model_levels = sum(default["levels_by_depth"])
    out = {
        "command": " ".join([".venv/bin/python -m bench.prefix_cache_policies", *(sys.argv[1:] if argv is None else argv)]),
        "search": {"evaluations": n, "population": args.population, "seed": args.seed, "generations": len(batches),
                   "budget": budget.to_dict()},
        "level_bytes_by_depth": [sizes[d] for d in range(space.num_stages + 1)],
        "level_seconds_by_depth": per_level,
        "real_cache_levels_computed": real.computed,
        "model_levels_computed_default_lru": model_levels,
        "model_matches_real_cache": model_levels == real.computed,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "prefix_cache_policies.json").write_text(json.dumps(out, indent=1))
    write_markdown(out, args.out / "prefix_cache_policies.md")
    print((args.out / "prefix_cache_policies.md").read_text())
    return out


def write_markdown(out: dict, path: Path) -> None:
    s = out["search"]
    lines = [
        "# Prefix cache: what bounds the search's speed-up (cache models on a real search's calls)",
        "",
        f"Command: `{out['command']}` (after `bench/search.py`, whose zoo it uses).",
        "",
        f"The {s['evaluations']}-evaluation evolution search of `bench/search.py` (population {s['population']}, "
        f"seed {s['seed']}, {s['generations']} scoring calls, max_macs {s['budget']['max_macs']:,}) is run once with "
        "the real `PrefixCache`; its calls are then replayed through a model of `score_architectures` and the "
        "cache that counts levels instead of computing them. Check: the model with the real cache's policy "
        f"(LRU, default bound) counts {out['model_levels_computed_default_lru']:,} levels, the real cache computed "
        f"{out['real_cache_levels_computed']:,} "
        f"({'identical' if out['model_matches_real_cache'] else 'DIFFERENT: the model is wrong'}).",
        "",
        "Level sizes (MiB) by depth (stem, stage 1..): "
        + ", ".join(f"{b / MIB:.2f}" for b in out["level_bytes_by_depth"])
        + ". Seconds per level by depth (1 thread, mean over 200 of the search's architectures scored alone): "
        + ", ".join(f"{t * 1000:.1f} ms" for t in out["level_seconds_by_depth"]) + ".",
        "",
        "| policy | levels per architecture | levels computed by depth (stem, 1..5) | modelled speed-up vs scratch (levels only) |",
        "|---|---|---|---|",
    ]
    for r in out["rows"]:
        lines.append(f"| {r['policy']} | {r['levels_per_architecture']:.2f} | {r['levels_by_depth']} | "
                     f"{r['modelled_speedup_vs_scratch']:.2f}x |")
    lines += [
        "",
        "The modelled speed-up counts level time only (no head, no per-call overhead, no memory "
        "effects); `bench/search.py` measures the real one. Reading: when the unbounded row is no "
        "better than the default LRU row, no eviction policy or larger bound can help; what is left "
        "is set by how many new prefixes the search itself produces (generation 0 is unrelated "
        "random architectures; later, each child's first new block).",
        "",
    ]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
