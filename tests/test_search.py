"""Constrained search (blockzoo.search): feasibility, memoisation, determinism, Pareto fronts,
evolution vs random on a synthetic objective, and one search over a real tiny zoo."""

from __future__ import annotations

import random
import statistics
import zlib
from collections import Counter

import pytest
import torch

from blockzoo.cost_model import cost
from blockzoo.progress import Cancelled
from blockzoo.search import (
    Budget, InfeasibleBudget, Pick, SearchOptions, block_crossover, blockwise_cost_fn, evolution_search,
    mutate, mutation_rates, pareto_front, random_search, search_zoo,
)
from blockzoo.space import Architecture, SearchSpace, get_space, sample_architectures

SPACE = get_space("mbv3-tiny")
COST = blockwise_cost_fn(SPACE, 1, 10)
STRATEGIES = [evolution_search, random_search]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread avoids spin-wait contention on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthetic_score(arch: Architecture) -> float:
    """Deterministic, structured objective: bigger blocks help (more in later stages), plus a
    fixed pseudo-random bonus per (stage, block) so that the best blocks must be found."""
    total = 0.0
    for m, expand in enumerate(arch.expand):
        total += 0.02 * (m + 1) * sum(expand)
        total += (zlib.crc32(f"{m}:{expand}".encode()) % 1000) / 1000
    return total


def synthetic_latency(arch: Architecture) -> float:
    """A positive latency (ms) that grows with depth and width, like a measured one."""
    return 0.5 + sum(0.1 * len(e) + 0.01 * sum(e) for e in arch.expand)


class CountingScorer:
    """``synthetic_score`` that records every call and every architecture it scores."""

    def __init__(self) -> None:
        self.calls: list[list[Architecture]] = []
        self.count: Counter[Architecture] = Counter()

    def __call__(self, archs: list[Architecture]) -> list[float]:
        self.calls.append(list(archs))
        self.count.update(archs)
        return [synthetic_score(a) for a in archs]


def _costs(arch: Architecture) -> dict[str, float]:
    c = cost(SPACE, arch, 1, 10)  # the reference cost model, not the search's blockwise copy
    return {"macs": c.macs, "params": c.params, "latency_ms": synthetic_latency(arch)}


def _random_budget(rng: random.Random, lo: dict[str, float], hi: dict[str, float]) -> Budget:
    """A random non-empty subset of constraints, each between the smallest value and a large one,
    biased towards tight limits (the hard case)."""
    names = [n for n in ("macs", "params", "latency_ms") if rng.random() < 0.6] or ["macs"]
    limits = {}
    for name in names:
        fraction = rng.random() ** 3  # many tight budgets
        value = lo[name] + fraction * (hi[name] - lo[name])
        limits[f"max_{name}"] = value if name == "latency_ms" else int(value)
    return Budget(**limits)


def test_every_pick_satisfies_every_constraint_over_random_budgets():
    rng = random.Random(0)
    sample = [_costs(a) for a in sample_architectures(SPACE, 200, 1)]
    lo = _costs(SPACE.smallest)
    hi = {name: max(c[name] for c in sample) for name in lo}
    for trial in range(40):
        budget = _random_budget(rng, lo, hi)
        search = STRATEGIES[trial % 2]
        result = search(SPACE, CountingScorer(), budget, COST, latency_fn=synthetic_latency, seed=trial,
                        population=8, generations=3, top_k=5, max_tries=200)
        assert result.picks and result.evaluated == len(result.candidates)
        everything = result.candidates + result.picks + [p for f in result.pareto_by_cost.values() for p in f]
        for pick in everything:
            costs = _costs(pick.arch)
            assert budget.admits(costs), (budget, pick.arch.id, costs)
            assert (pick.macs, pick.params) == (costs["macs"], costs["params"])
            assert pick.latency_ms == pytest.approx(costs["latency_ms"])


@pytest.mark.parametrize("limit, name", [("max_macs", "macs"), ("max_params", "params"),
                                         ("max_latency_ms", "latency_ms")])
def test_an_infeasible_budget_is_a_clear_error_before_any_scoring(limit, name):
    smallest = _costs(SPACE.smallest)[name]
    budget = Budget(**{limit: smallest * 0.9 if name == "latency_ms" else int(smallest) - 1})

    def must_not_score(archs):
        raise AssertionError("scored despite an infeasible budget")

    for search in STRATEGIES:
        with pytest.raises(InfeasibleBudget, match=rf"{limit} = .* below the smallest achievable {name}") as err:
            search(SPACE, must_not_score, budget, COST, latency_fn=synthetic_latency)
        assert SPACE.smallest.id in str(err.value)
    # Exactly the smallest value is feasible.
    Budget(**{limit: smallest}).check_feasible(SPACE, COST, synthetic_latency)


def test_a_latency_budget_needs_a_latency_function_and_limits_must_be_positive():
    with pytest.raises(ValueError, match="latency table"):
        evolution_search(SPACE, CountingScorer(), Budget(max_latency_ms=5.0), COST)
    for bad in (0, -1, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="positive finite"):
            Budget(max_macs=bad)
    with pytest.raises(ValueError, match="unknown budget field"):
        Budget.from_dict({"max_flops": 1})
    assert Budget.from_dict(Budget(max_params=10).to_dict()) == Budget(max_params=10)


def test_invalid_options_are_refused_with_every_problem_named():
    with pytest.raises(ValueError, match="population must be at least 2.*crossover must be one of"):
        evolution_search(SPACE, CountingScorer(), Budget(), COST, population=1, crossover="uniform")
    with pytest.raises(ValueError, match="max_evaluations"):
        random_search(SPACE, CountingScorer(), Budget(), COST, max_evaluations=0)


@pytest.mark.parametrize("search", STRATEGIES)
def test_same_seed_same_result_and_another_seed_another_path(search):
    budget = Budget(max_macs=2_500_000)
    runs = [search(SPACE, CountingScorer(), budget, COST, seed=seed, population=10, generations=4)
            for seed in (3, 3, 4)]
    ids = [[p.arch.id for p in r.candidates] for r in runs]
    assert ids[0] == ids[1] and [p.score for p in runs[0].picks] == [p.score for p in runs[1].picks]
    assert ids[0] != ids[2]


@pytest.mark.parametrize("search", STRATEGIES)
def test_scores_are_memoised_and_each_generation_is_one_scoring_call(search):
    scorer = CountingScorer()
    result = search(SPACE, scorer, Budget(max_params=300_000), COST, population=12, generations=6)
    assert max(scorer.count.values()) == 1  # no architecture scored twice
    assert result.evaluated == sum(scorer.count.values()) == len(result.candidates)
    assert len(scorer.calls) == len(result.history)
    assert [len(c) for c in scorer.calls] == [g.new for g in result.history]
    assert result.evaluated == SearchOptions(population=12, generations=6).evaluations == 12 + 6 * 9


def test_max_evaluations_caps_the_search_and_history_is_cumulative():
    result = evolution_search(SPACE, CountingScorer(), Budget(), COST, population=10, generations=50,
                              max_evaluations=37)
    assert result.evaluated == 37 and not result.exhausted
    assert [g.evaluated for g in result.history] == sorted({g.evaluated for g in result.history})
    assert result.history[-1].evaluated == 37
    best = [g.best_score for g in result.history]
    assert best == sorted(best) and best[-1] == result.best.score


def test_a_budget_that_admits_only_a_few_architectures_ends_the_search_instead_of_looping():
    budget = Budget(max_macs=cost(SPACE, SPACE.smallest, 1, 10).macs)  # the smallest and its equals
    for search in STRATEGIES:
        scorer = CountingScorer()
        result = search(SPACE, scorer, budget, COST, population=10, generations=5, max_tries=50)
        assert result.exhausted and 1 <= result.evaluated < 10
        assert SPACE.smallest in [p.arch for p in result.candidates]
        assert all(p.macs <= budget.max_macs for p in result.candidates)


def test_picks_are_the_top_k_by_score():
    result = random_search(SPACE, CountingScorer(), Budget(), COST, population=20, generations=2, top_k=7)
    scores = sorted((p.score for p in result.candidates), reverse=True)
    assert [p.score for p in result.picks] == scores[:7]


def _dominates(a: Pick, b: Pick, name: str) -> bool:
    return a.score >= b.score and a.cost(name) <= b.cost(name) and (a.score > b.score or a.cost(name) < b.cost(name))


def test_pareto_fronts_are_non_dominated_and_cover_every_candidate():
    result = evolution_search(SPACE, CountingScorer(), Budget(max_macs=4_000_000), COST,
                              latency_fn=synthetic_latency, population=16, generations=5)
    assert set(result.pareto_by_cost) == {"macs", "params", "latency_ms"}
    assert result.pareto == result.pareto_by_cost["macs"]
    for name, front in result.pareto_by_cost.items():
        assert [p.cost(name) for p in front] == sorted(p.cost(name) for p in front)
        for member in front:
            assert not any(_dominates(c, member, name) for c in result.candidates)
        for c in result.candidates:
            assert c in front or any(_dominates(m, c, name) or (m.score, m.cost(name)) == (c.score, c.cost(name))
                                     for m in front)


def test_pareto_front_by_hand():
    a, b, c, d = (Architecture((1,) * 5, ((r,),) * 5) for r in (2, 4, 6, 8))
    picks = [Pick(a, 0.5, 10, 1), Pick(b, 0.4, 20, 1), Pick(c, 0.7, 30, 1), Pick(d, 0.7, 40, 1)]
    assert [p.arch for p in pareto_front(picks, "macs")] == [a, c]
    assert [p.arch for p in pareto_front(picks, "params")] == [c]  # ties on cost: best score wins
    with pytest.raises(KeyError, match="latency_ms"):
        pareto_front(picks, "latency_ms")


def test_evolution_beats_random_search_on_a_structured_objective():
    budget = Budget(max_macs=int(statistics.median(COST(a).macs for a in sample_architectures(SPACE, 300, 9))))
    best = {search.__name__: [] for search in STRATEGIES}
    for seed in range(5):
        for search in STRATEGIES:
            result = search(SPACE, CountingScorer(), budget, COST, seed=seed, population=30, generations=100,
                            max_evaluations=300)
            assert result.evaluated == 300
            best[search.__name__].append(result.best.score)
    assert statistics.median(best["evolution_search"]) > statistics.median(best["random_search"])


def test_repair_steps_never_increase_macs_or_params():
    from blockzoo.search import _Evaluator

    rng = random.Random(1)
    ev = _Evaluator(SPACE, CountingScorer(), Budget(max_macs=1), COST, None, rng, max_tries=1)
    for arch in sample_architectures(SPACE, 30, 2):
        steps = 0
        while (smaller := ev.shrink(arch)) is not None:
            SPACE.validate(smaller)
            assert COST(smaller).macs <= COST(arch).macs and COST(smaller).params <= COST(arch).params
            arch, steps = smaller, steps + 1
        assert arch == SPACE.smallest and steps > 0


def test_blockwise_cost_is_the_cost_model():
    for arch in sample_architectures(SPACE, 20, 5):
        assert COST(arch) == cost(SPACE, arch, 1, 10)


def test_mutation_ramp_keeps_the_mean_rate_and_operators_make_valid_children():
    rates = mutation_rates(5, 0.1, ramp=True)
    assert rates == sorted(rates) and statistics.mean(rates) == pytest.approx(0.1)
    assert mutation_rates(5, 0.1, ramp=False) == [0.1] * 5
    rng = random.Random(0)
    archs = sample_architectures(SPACE, 20, 6)
    for a, b in zip(archs, archs[1:]):
        child = block_crossover(a, b, rng)
        SPACE.validate(child)
        assert all(e in (x, y) for e, x, y in zip(child.expand, a.expand, b.expand))
        SPACE.validate(mutate(SPACE, a, rng, rates))
    assert mutate(SPACE, archs[0], rng, [0.0] * 5) == archs[0]


def test_progress_is_reported_and_should_stop_cancels():
    seen = []
    evolution_search(SPACE, CountingScorer(), Budget(), COST, population=6, generations=3,
                     progress=lambda f, msg: seen.append(f))
    assert seen == sorted(seen) and seen[-1] == 1.0
    calls = []
    with pytest.raises(Cancelled):
        evolution_search(SPACE, CountingScorer(), Budget(), COST, population=6, generations=3,
                         should_stop=lambda: calls.append(1) or len(calls) > 2)


def test_result_serialises_to_json():
    import json

    result = random_search(SPACE, CountingScorer(), Budget(max_macs=3_000_000), COST, population=5,
                           generations=1, top_k=3)
    data = json.loads(json.dumps(result.to_dict(candidates=True)))
    assert data["budget"]["max_macs"] == 3_000_000 and len(data["picks"]) == 3
    assert set(data["pareto"]) == {"macs", "params"} and len(data["candidates"]) == result.evaluated
    assert SPACE.parse(data["picks"][0]["arch_id"]) == result.best.arch


# --- a real (tiny) zoo -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_zoo(tmp_path_factory):
    """A lazy zoo over a 2-depth, 2-ratio variant of mbv3-tiny (6 blocks per stage) on synthetic data."""
    from blockzoo.data import import_builtin, open_store
    from blockzoo.nets import build_network
    from blockzoo.zoo import BlockZoo, DistillRecipe, save_network

    root = tmp_path_factory.mktemp("search-zoo")
    space = SearchSpace.from_dict({**SPACE.to_dict(), "name": "tiny-search-test", "depth_choices": [1, 2],
                                   "expand_choices": [2, 4]})
    store = open_store(import_builtin("synthetic", root / "data", num_images=400).path)
    torch.manual_seed(0)
    save_network(build_network(space, space.reference, 1, 10), root / "reference.safetensors")
    recipe = DistillRecipe(batches=2, batch_size=16, heldout_batches=1, chunk_size=8)
    return BlockZoo.create(root / "zoo", space, store, root / "reference.safetensors", recipe)


@pytest.mark.parametrize("strategy", ["evolution", "random"])
def test_search_zoo_returns_feasible_picks_scored_by_the_proxy(tiny_zoo, strategy):
    from blockzoo.proxy import score_architectures

    space = tiny_zoo.space
    macs = sorted(cost(space, a, 1, 10).macs for a in sample_architectures(space, 50, 0))
    budget = Budget(max_macs=macs[len(macs) // 2])
    result = search_zoo(tiny_zoo, budget, strategy, seed=1, population=6, generations=2, top_k=3)
    assert result.strategy == strategy and result.evaluated == 6 + 2 * (6 - 2) and len(result.picks) == 3
    for pick in result.candidates:
        assert pick.macs == cost(space, pick.arch, 1, 10).macs <= budget.max_macs
    scores = score_architectures(tiny_zoo, [p.arch for p in result.picks])
    assert [p.score for p in result.picks] == [s.proxy_accuracy for s in scores]
    assert all(0.0 <= p.score <= 1.0 for p in result.picks)


def test_search_zoo_keeps_prefix_levels_between_generations(tiny_zoo):
    from blockzoo.proxy import PrefixCache, score_architectures

    budget = Budget(max_macs=cost(tiny_zoo.space, tiny_zoo.space.reference, 1, 10).macs)
    cache = PrefixCache()
    result = search_zoo(tiny_zoo, budget, seed=2, population=8, generations=3, prefix_cache=cache)
    # Scores as if every architecture were scored alone, from scratch.
    assert [p.score for p in result.candidates] == [
        score_architectures(tiny_zoo, [p.arch])[0].proxy_accuracy for p in result.candidates]
    # Fewer levels than sharing within each generation's call only: children reuse their parents'.
    M, start, within = tiny_zoo.space.num_stages, 0, 0
    for generation in result.history:
        batch = [p.arch for p in result.candidates[start:start + generation.new]]
        within += len({a.expand[:n] for a in batch for n in range(M + 1)})
        start += generation.new
    assert cache.reused > 0 and cache.computed == within - cache.reused < within


def test_search_zoo_honours_a_latency_budget_from_a_latency_table(tiny_zoo):
    from blockzoo.latency import LatencyTable, Timing

    space = tiny_zoo.space
    table = LatencyTable.measure(space, 1, 10, timing=Timing(warmup=1, repeats=2, rounds=1))
    limit = 1.2 * table.predict(space.smallest)
    result = search_zoo(tiny_zoo, Budget(max_latency_ms=limit), latency_table=table, seed=0, population=4,
                        generations=1, metric="heldout_accuracy")
    assert set(result.pareto_by_cost) == {"macs", "params", "latency_ms"}
    for pick in result.candidates:
        assert pick.latency_ms == table.predict(pick.arch) <= limit
    with pytest.raises(InfeasibleBudget, match="max_latency_ms"):
        search_zoo(tiny_zoo, Budget(max_latency_ms=0.5 * table.predict(space.smallest)), latency_table=table)
    with pytest.raises(ValueError, match="unknown search strategy"):
        search_zoo(tiny_zoo, Budget(), "annealing")
