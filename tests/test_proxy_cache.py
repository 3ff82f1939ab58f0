"""The proxy's prefix cache across scoring calls (blockzoo.proxy.PrefixCache): scores identical to
scoring every architecture from scratch, levels computed once per cache, keys that cover
everything a level depends on, and the LRU bound."""

from __future__ import annotations

import random

import pytest
import torch

from blockzoo.distill import DistillRecipe
from blockzoo.proxy import PrefixCache, _Level, score_architectures
from blockzoo.space import Architecture
from blockzoo.zoo import BlockZoo, KDData

from conftest import SMALL_RECIPE


def with_stage(arch: Architecture, stage: int, expand: tuple[int, ...]) -> Architecture:
    e = arch.expand[:stage] + (tuple(expand),) + arch.expand[stage + 1:]
    return Architecture(tuple(len(x) for x in e), e)


def generations(space) -> tuple[list[Architecture], list[Architecture]]:
    """Two 'generations': the second made of children that keep early stages of the first."""
    base = space.sample(random.Random(3))
    other = with_stage(base, 3, (4, 4) if base.expand[3] != (4, 4) else (6, 6))
    first = [base, with_stage(base, 4, (2,) if base.expand[4] != (2,) else (4,)), other]
    second = [with_stage(base, 4, (6, 2) if base.expand[4] != (6, 2) else (8, 2)),
              with_stage(other, 4, (8,) if other.expand[4] != (8,) else (10,)),
              with_stage(base, 2, (2,) if base.expand[2] != (2,) else (4,))]
    assert len(set(first + second)) == 6
    return first, second


def prefixes(archs, num_stages: int, *, final: bool = True) -> set[tuple]:
    """The levels (stem = (), then stage prefixes) these architectures need."""
    top = num_stages + 1 if final else num_stages
    return {a.expand[:n] for a in archs for n in range(top)}


@pytest.fixture(scope="module")
def make_shared_zoo(tiny_space, trained_reference, train_tensors, synthetic_store, tmp_path_factory):
    """conftest's make_zoo, once per module (blocks are distilled once for all tests here)."""
    zoos: dict[DistillRecipe, BlockZoo] = {}

    def make(recipe: DistillRecipe = SMALL_RECIPE) -> BlockZoo:
        if recipe not in zoos:
            x, y = train_tensors
            zoos[recipe] = BlockZoo.create_from_parts(
                tmp_path_factory.mktemp("zoo"), tiny_space, trained_reference, KDData.select(x, y, recipe),
                recipe, in_channels=x.shape[1], num_classes=synthetic_store.num_classes)
        return zoos[recipe]

    return make


@pytest.fixture
def zoo(make_shared_zoo):
    return make_shared_zoo()


def test_cross_call_cache_gives_bit_identical_scores_and_computes_each_level_once(zoo, tiny_space):
    first, second = generations(tiny_space)
    M = tiny_space.num_stages
    scratch = [score_architectures(zoo, [a])[0] for a in first + second]  # one call each, nothing shared

    cache = PrefixCache()
    got = score_architectures(zoo, first, cache=cache)
    assert cache.computed == len(prefixes(first, M)) and cache.reused == 0
    # Only the non-final levels are kept: a search scores each architecture once.
    assert len(cache) == len(prefixes(first, M, final=False))
    got += score_architectures(zoo, second, cache=cache)
    assert got == scratch  # dataclass equality: every float bit-identical
    # The second call computed only the levels the first did not: fewer than on its own.
    new = prefixes(second, M) - prefixes(first, M, final=False)
    assert cache.computed == len(prefixes(first, M)) + len(new)
    assert len(new) < len(prefixes(second, M))
    assert cache.reused >= 1

    # A fresh cache per call is scoring from scratch: 1 + M levels per architecture.
    fresh = [PrefixCache() for _ in first]
    assert [score_architectures(zoo, [a], cache=c)[0] for a, c in zip(first, fresh)] == scratch[:3]
    assert [c.computed for c in fresh] == [1 + M] * 3

    # Scoring the same architectures again recomputes only their last stage (the head is never cached).
    before = cache.computed
    assert score_architectures(zoo, first + second, cache=cache) == scratch
    assert cache.computed - before == len(first + second)


def test_cached_levels_hold_exactly_the_tensors_computed_from_scratch(zoo, tiny_space):
    first, second = generations(tiny_space)
    cache = PrefixCache()
    score_architectures(zoo, first + second, cache=cache)
    for key, level in list(cache._levels.items()):
        expand = key[-1]
        arch = next(a for a in first + second if a.expand[:len(expand)] == expand)
        probe = PrefixCache()
        score_architectures(zoo, [arch], cache=probe)  # fresh: computes the whole path again
        again = probe._levels[key]
        assert torch.equal(level.eval_out, again.eval_out) and torch.equal(level.train_out, again.train_out)


def test_the_key_covers_the_recalibrate_flag_and_the_zoo(make_shared_zoo, tiny_space):
    zoo = make_shared_zoo()
    other = make_shared_zoo(DistillRecipe(batches=4, batch_size=32, heldout_batches=2, seed=1))
    first, _ = generations(tiny_space)
    M = tiny_space.num_stages
    cache = PrefixCache()
    with_recal = score_architectures(zoo, first, cache=cache)
    without = score_architectures(zoo, first, recalibrate=False, cache=cache)
    assert without == score_architectures(zoo, first, recalibrate=False) != with_recal
    theirs = score_architectures(other, first, cache=cache)
    assert theirs == score_architectures(other, first) != with_recal
    assert cache.reused == 0 and cache.computed == 3 * len(prefixes(first, M))


@pytest.mark.parametrize("bound", ["entries", "bytes"])
def test_the_lru_bound_holds_and_scores_stay_identical(zoo, tiny_space, bound):
    first, second = generations(tiny_space)
    expected = score_architectures(zoo, first + second)
    probe = PrefixCache()
    score_architectures(zoo, first[:1], cache=probe)
    stem = probe._levels[next(iter(probe._levels))].nbytes  # the stem's level is the largest
    cache = PrefixCache(max_entries=2) if bound == "entries" else PrefixCache(max_bytes=int(2.5 * stem))
    got = []
    for arch in first + second + first:
        got += score_architectures(zoo, [arch], cache=cache)
        assert len(cache) <= 2 if bound == "entries" else cache.nbytes <= cache.max_bytes
        assert cache.nbytes == sum(level.nbytes for level in cache._levels.values())
    assert got == expected + expected[:3]
    assert cache.evicted > 0
    if bound == "bytes":
        assert cache.peak_bytes <= cache.max_bytes
    # Within a call the current prefix is kept regardless of the bound: a bound of 0 computes
    # exactly what a call without a cache computes.
    none = PrefixCache(max_bytes=0)
    assert score_architectures(zoo, first + second, cache=none) == expected
    assert len(none) == 0 and none.computed == len(prefixes(first + second, tiny_space.num_stages))


def level(floats: int) -> _Level:
    return _Level((), torch.zeros(floats), torch.zeros(0))


def test_prefix_cache_evicts_the_least_recently_used_level_first():
    cache = PrefixCache(max_bytes=4 * 100)
    cache.put(("a",), level(40))
    cache.put(("b",), level(40))
    assert cache.get(("a",)) is not None and cache.get(("x",)) is None  # a is now the most recent
    cache.put(("c",), level(40))  # 480 bytes > 400: b goes
    assert ("b",) not in cache and ("a",) in cache and ("c",) in cache
    assert cache.nbytes == 320 and cache.evicted == 1 and cache.reused == 1
    cache.put(("huge",), level(101))  # larger than the bound: not stored, nothing evicted
    assert ("huge",) not in cache and len(cache) == 2 and cache.evicted == 1
    assert cache.stats()["peak_bytes"] == 320
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0
    with pytest.raises(ValueError):
        PrefixCache(max_bytes=-1)


def test_scoring_never_touches_the_zoo_modules_and_threads_get_identical_scores(zoo, tiny_space):
    from concurrent.futures import ThreadPoolExecutor

    first, second = generations(tiny_space)
    archs = first + second
    zoo.ensure_blocks(archs)
    modules = [zoo.reference.prefix, zoo.reference.head] + [zoo.load_block(m, e) for a in archs
                                                            for m, e in enumerate(a.expand)]
    before = [({k: v.clone() for k, v in m.state_dict().items()}, m.training) for m in modules]
    expected = score_architectures(zoo, archs)
    assert score_architectures(zoo, archs, recalibrate=False) != expected
    assert score_architectures(zoo, archs) == expected  # no state left behind by the run without recalibration
    for m, (state, training) in zip(modules, before):
        assert m.training == training
        assert all(torch.equal(v, state[k]) for k, v in m.state_dict().items())
    # Working copies are per module and locked: concurrent calls on one zoo still agree.
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda a: score_architectures(zoo, [a])[0], archs * 2))
    assert results == expected * 2
