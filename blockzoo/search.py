"""Best-under-budget architecture search: constrained evolution, and random search as the baseline.

Evolution follows once-for-all's evolution finder: a population of feasible architectures;
each generation the best ``parents_ratio`` survive and the rest is refilled with mutated
parents (``mutation_ratio`` of the population) and crossovers of two parents. Random search
draws feasible architectures and keeps the best.

What differs from once-for-all, and why:

* Every candidate is feasible by construction. An infeasible draw or child is *repaired*:
  shrunk one random step at a time (a stage drops to the next smaller depth, or one layer
  takes the next smaller expansion ratio) until it fits. No step increases MACs or params
  and the walk ends at the space's smallest architecture; if even that does not fit (a
  latency bound: measured latency is not quite monotone in size) the repair takes the
  budget's floor, the smallest or the fastest architecture, which :meth:`Budget.check_feasible`
  has verified to fit before any work. So tight budgets do not starve the search the way
  rejection sampling does, and no loop is unbounded.
* Every architecture is scored at most once (scores are memoised): a child is redrawn until
  it is new, at most ``max_tries`` times, then replaced by a new random draw; when even
  ``max_tries`` random draws find nothing new the feasible set is exhausted and the search
  ends early (``SearchResult.exhausted``).
* Each generation's new children are scored in ONE ``score_fn`` call, so a scorer that
  shares work across architectures — :func:`blockzoo.proxy.score_architectures` computes the
  features of a shared prefix of blocks once — shares it across the generation;
  :func:`search_zoo` also keeps those features between generations (a
  :class:`blockzoo.proxy.PrefixCache`), so a child reuses the prefix its parent was scored
  with. Two choices make children share prefixes more often: crossover takes whole candidate
  blocks from a parent (``crossover="block"``; once-for-all mixes single layers, ``"layer"``),
  and later stages mutate more often than early ones (``mutate_ramp``, same mean rate).
  Measured in ``bench/results/search.md``.

The search needs only a scoring callable (higher is better) and a cost callable, so it is
testable without a zoo; :func:`search_zoo` wires it to a block zoo, the analytic cost model
and an optional :class:`blockzoo.latency.LatencyTable`. The module is pure Python (torch is
imported only when :func:`search_zoo` runs), so the API process can validate budgets cheaply.
"""

from __future__ import annotations

import math
import numbers
import random
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from .cost_model import Cost, block_cost, head_cost, prefix_cost
from .progress import ProgressFn, StopFn, check_stop, report
from .signals import COST_SIGNALS, SIGNAL_NAMES, Signal, get_signal
from .space import Architecture, SearchSpace

if TYPE_CHECKING:
    from .latency import LatencyTable
    from .proxy import PrefixCache
    from .zoo import BlockZoo

ScoreFn = Callable[[list[Architecture]], Sequence[float]]
CostFn = Callable[[Architecture], Cost]
LatencyFn = Callable[[Architecture], float]

STRATEGIES = ("evolution", "random")
COSTS = ("macs", "params", "latency_ms")
METRICS = SIGNAL_NAMES  # a search may rank by any signal; blockzoo.signals knows which way each points
CROSSOVERS = ("block", "layer")  # whole candidate blocks (default) or single layers (space.crossover)


class InfeasibleBudget(ValueError):
    """No architecture of the space satisfies the budget (raised before any scoring).

    ``smallest``: per bound of the budget, the smallest achievable value (the error names them).
    """

    def __init__(self, message: str, smallest: Optional[dict[str, float]] = None) -> None:
        super().__init__(message)
        self.smallest = dict(smallest or {})


@dataclass(frozen=True)
class Budget:
    """Upper limits on the costs of a pick; ``None`` means unconstrained."""

    max_macs: Optional[int] = None
    max_params: Optional[int] = None
    max_latency_ms: Optional[float] = None

    def __post_init__(self) -> None:
        for name, value in self.limits().items():
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
                    or value <= 0:
                raise ValueError(f"budget max_{name} must be a positive finite number, got {value!r}")

    def limits(self) -> dict[str, float]:
        """The set limits by cost name (``macs``, ``params``, ``latency_ms``)."""
        values = {"macs": self.max_macs, "params": self.max_params, "latency_ms": self.max_latency_ms}
        return {name: value for name, value in values.items() if value is not None}

    def violations(self, costs: dict[str, float]) -> dict[str, float]:
        """The limits that ``costs`` exceed, with the exceeding values."""
        return {name: costs[name] for name, limit in self.limits().items() if costs[name] > limit}

    def admits(self, costs: dict[str, float]) -> bool:
        return all(costs[name] <= limit for name, limit in self.limits().items())

    @property
    def front_cost(self) -> str:
        """The cost of the search's main Pareto front: latency under a latency budget, else MACs."""
        return "latency_ms" if self.max_latency_ms is not None else "macs"

    def check_feasible(self, space: SearchSpace, cost_fn: CostFn, latency_fn: Optional[LatencyFn] = None,
                       fastest: Optional[Architecture] = None) -> Architecture:
        """An architecture that fits the budget, the floor of every repair; :class:`InfeasibleBudget` if none.

        The space's smallest architecture (minimum depth and ratio everywhere) has the fewest
        MACs and params of the space. Measured latency is not quite monotone in size (blocks of
        nearly equal latency are ordered by noise), so the lowest latency is ``fastest``'s (e.g.
        :meth:`blockzoo.latency.LatencyTable.fastest`; default: the smallest architecture). The
        floor is the first of the two that fits every bound; the error names, per bound that
        neither meets, the smallest achievable value.
        """
        if self.max_latency_ms is not None and latency_fn is None:
            raise ValueError("a max_latency_ms budget needs a latency table (or latency function) "
                             "measured on the device that will run the network")
        floors = [space.smallest]
        if latency_fn is not None and fastest is not None and fastest != space.smallest:
            floors.append(space.validate(fastest))
        costs = {arch: _costs(arch, cost_fn, latency_fn) for arch in floors}
        for arch in floors:
            if self.admits(costs[arch]):
                return arch
        achievable = {name: min(floors, key=lambda a: costs[a][name]) for name in self.limits()}
        problems = [
            f"max_{name} = {_fmt(limit)} is below the smallest achievable {name} = "
            f"{_fmt(costs[achievable[name]][name])} (architecture {achievable[name].id})"
            for name, limit in self.limits().items() if costs[achievable[name]][name] > limit
        ]
        if not problems:  # each bound alone is achievable, but not by one of the floors together
            problems = ["no architecture meets every bound together: " + "; ".join(
                f"{arch.id} has " + ", ".join(f"{name} {_fmt(value)}" for name, value in
                                             self.violations(costs[arch]).items())
                for arch in floors)]
        raise InfeasibleBudget(f"infeasible budget for space '{space.name}': " + "; ".join(problems),
                               smallest={name: costs[a][name] for name, a in achievable.items()})

    def to_dict(self) -> dict[str, Any]:
        return {"max_macs": self.max_macs, "max_params": self.max_params,
                "max_latency_ms": self.max_latency_ms}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Budget":
        unknown = set(data) - {"max_macs", "max_params", "max_latency_ms"}
        if unknown:
            raise ValueError(f"unknown budget field(s) {sorted(unknown)}; "
                             "allowed: max_macs, max_params, max_latency_ms")
        return cls(**data)


def _fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else f"{value:,}"


def _costs(arch: Architecture, cost_fn: CostFn, latency_fn: Optional[LatencyFn]) -> dict[str, float]:
    c = cost_fn(arch)
    costs: dict[str, float] = {"macs": c.macs, "params": c.params}
    if latency_fn is not None:
        costs["latency_ms"] = float(latency_fn(arch))
    return costs


@dataclass(frozen=True)
class Pick:
    """One evaluated architecture with its score (higher is better) and its costs."""

    arch: Architecture
    score: float
    macs: int
    params: int
    latency_ms: Optional[float] = None

    @property
    def arch_id(self) -> str:
        return self.arch.id

    def cost(self, name: str) -> float:
        value = getattr(self, name) if name in COSTS else None
        if value is None:
            raise KeyError(f"cost {name!r} is not known for this pick; known: "
                           f"{[c for c in COSTS if getattr(self, c) is not None]}")
        return value

    def to_dict(self) -> dict[str, Any]:
        return {"arch_id": self.arch.id, "architecture": self.arch.to_dict(), "score": self.score,
                "macs": self.macs, "params": self.params, "latency_ms": self.latency_ms}


@dataclass(frozen=True)
class Generation:
    """Progress of a search after one batch of evaluations (generation 0: the initial population)."""

    index: int
    evaluated: int        # architectures scored so far (cumulative)
    new: int              # architectures scored in this generation
    best_score: float     # best score found so far
    seconds: float        # wall time since the search started

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "evaluated": self.evaluated, "new": self.new,
                "best_score": self.best_score, "seconds": self.seconds}


@dataclass
class SearchResult:
    strategy: str
    budget: Budget
    seed: int
    picks: list[Pick]                     # the top_k scores, best first
    pareto: list[Pick]                    # non-dominated on (score up, budget.front_cost down)
    pareto_by_cost: dict[str, list[Pick]]  # the same front against each known cost
    evaluated: int                        # architectures scored (each once)
    history: list[Generation]
    candidates: list[Pick] = field(repr=False)  # every scored architecture, in scoring order
    exhausted: bool = False               # ended early: no new feasible architecture was found

    @property
    def best(self) -> Pick:
        return self.picks[0]

    def to_dict(self, *, candidates: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "strategy": self.strategy, "budget": self.budget.to_dict(), "seed": self.seed,
            "evaluated": self.evaluated, "exhausted": self.exhausted,
            "picks": [p.to_dict() for p in self.picks],
            "pareto": {name: [p.to_dict() for p in front] for name, front in self.pareto_by_cost.items()},
            "history": [g.to_dict() for g in self.history],
        }
        if candidates:
            out["candidates"] = [p.to_dict() for p in self.candidates]
        return out


def rank(picks: Sequence[Pick]) -> list[Pick]:
    """Best first: higher score, then fewer MACs and params, then the id (deterministic ties)."""
    return sorted(picks, key=lambda p: (-_finite(p.score), p.macs, p.params, p.arch.id))


def _finite(score: float) -> float:
    return score if math.isfinite(score) else -math.inf  # NaN/inf scores rank last


def pareto_front(picks: Sequence[Pick], cost: str = "macs") -> list[Pick]:
    """Picks that no other pick beats on both score (higher) and ``cost`` (lower), by cost."""
    front: list[Pick] = []
    best = -math.inf
    for p in sorted(picks, key=lambda p: (p.cost(cost), -_finite(p.score), p.arch.id)):
        if _finite(p.score) > best:  # strictly better than everything at most as costly
            front.append(p)
            best = _finite(p.score)
    return front


class _Evaluator:
    """Feasibility, repair and memoised scores for one search."""

    def __init__(self, space: SearchSpace, score_fn: ScoreFn, budget: Budget, cost_fn: CostFn,
                 latency_fn: Optional[LatencyFn], rng: random.Random, max_tries: int,
                 floor: Optional[Architecture] = None) -> None:
        self.space, self.score_fn, self.budget = space, score_fn, budget
        self.floor = space.smallest if floor is None else floor  # fits the budget (check_feasible)
        self.cost_fn, self.latency_fn, self.rng, self.max_tries = cost_fn, latency_fn, rng, max_tries
        self._costs: dict[Architecture, dict[str, float]] = {}
        self.scores: dict[Architecture, float] = {}  # memo, in scoring order
        self.depths = sorted(space.depth_choices)
        self.ratios = sorted(space.expand_choices)

    def costs(self, arch: Architecture) -> dict[str, float]:
        if arch not in self._costs:
            self._costs[arch] = _costs(arch, self.cost_fn, self.latency_fn)
        return self._costs[arch]

    def fits(self, arch: Architecture) -> bool:
        return self.budget.admits(self.costs(arch))

    def shrink(self, arch: Architecture) -> Optional[Architecture]:
        """One random step towards the smallest architecture; None when already there."""
        steps = []
        for m, ratios in enumerate(arch.expand):
            if len(ratios) > self.depths[0]:
                steps.append((m, -1))
            steps.extend((m, layer) for layer, r in enumerate(ratios) if r > self.ratios[0])
        if not steps:
            return None
        m, layer = self.rng.choice(steps)
        ratios = list(arch.expand[m])
        if layer < 0:  # drop layers down to the next smaller allowed depth
            ratios = ratios[:max(d for d in self.depths if d < len(ratios))]
        else:
            ratios[layer] = max(r for r in self.ratios if r < ratios[layer])
        expand = arch.expand[:m] + (tuple(ratios),) + arch.expand[m + 1:]
        return Architecture(tuple(len(e) for e in expand), expand)

    def repair(self, arch: Architecture) -> Architecture:
        """``arch`` itself if it fits, else a shrunk version that fits, else the floor (which fits)."""
        current: Optional[Architecture] = arch
        while current is not None and not self.fits(current):
            current = self.shrink(current)
        return self.floor if current is None else current

    def novel(self, make: Callable[[], Architecture], taken: set[Architecture]) -> Optional[Architecture]:
        """A feasible architecture from ``make`` (repaired) that is not in ``taken``, or None."""
        for _ in range(self.max_tries):
            arch = self.repair(make())
            if arch not in taken:
                return arch
        return None

    def score(self, archs: list[Architecture]) -> None:
        """Score the (new) ``archs`` in one ``score_fn`` call so the scorer can share work."""
        todo = [a for a in dict.fromkeys(archs) if a not in self.scores]
        if not todo:
            return
        values = list(self.score_fn(todo))
        if len(values) != len(todo):
            raise ValueError(f"score_fn returned {len(values)} scores for {len(todo)} architectures")
        for arch, value in zip(todo, values):
            self.scores[arch] = float(value)

    def pick(self, arch: Architecture) -> Pick:
        c = self.costs(arch)
        return Pick(arch, self.scores[arch], int(c["macs"]), int(c["params"]), c.get("latency_ms"))


def mutation_rates(num_stages: int, mutate_prob: float, ramp: bool) -> list[float]:
    """Per-stage mutation probability: uniform (once-for-all) or ramped up towards later stages.

    The ramp gives stage ``m`` (0-based) of ``M`` the rate ``mutate_prob * 2(m+1)/(M+1)``, the
    same mean as the uniform rate. Children that keep their parent's early stages share them
    with their parent and siblings, and the prefix cache computes a shared prefix once per
    search; the early stages are also the most expensive ones to evaluate (largest feature maps).
    """
    if not ramp:
        return [mutate_prob] * num_stages
    return [min(1.0, mutate_prob * 2 * (m + 1) / (num_stages + 1)) for m in range(num_stages)]


def mutate(space: SearchSpace, arch: Architecture, rng: random.Random, rates: Sequence[float]) -> Architecture:
    """Resample stage ``m``'s depth, and each of its layers' ratio, with probability ``rates[m]``.

    ``space.mutate`` with a per-stage rate; a layer added by a deeper depth gets a random ratio.
    """
    expand = []
    for ratios, rate in zip(arch.expand, rates):
        depth = rng.choice(space.depth_choices) if rng.random() < rate else len(ratios)
        expand.append(tuple(
            ratios[layer] if layer < len(ratios) and rng.random() >= rate else rng.choice(space.expand_choices)
            for layer in range(depth)
        ))
    return Architecture(tuple(len(e) for e in expand), tuple(expand))


def block_crossover(a: Architecture, b: Architecture, rng: random.Random) -> Architecture:
    """Each stage's whole candidate block from one parent, chosen uniformly.

    Unlike ``space.crossover`` (which mixes single layers), the child is made of blocks its
    parents already have: a lazy zoo has them distilled, and siblings share more prefixes.
    """
    expand = tuple(rng.choice(pair) for pair in zip(a.expand, b.expand))
    return Architecture(tuple(len(e) for e in expand), expand)


@dataclass(frozen=True)
class SearchOptions:
    """Hyper-parameters of a search (once-for-all's evolution finder defaults, except where noted)."""

    population: int = 100
    generations: int = 20
    parents_ratio: float = 0.25        # survivors of each generation
    mutation_ratio: float = 0.5        # share of the population refilled by mutation (rest: crossover)
    mutate_prob: float = 0.1           # mean per-gene resampling probability
    mutate_ramp: bool = True           # later stages mutate more often (see mutation_rates)
    crossover: str = "block"           # "block" (whole candidate blocks) or "layer" (space.crossover)
    max_evaluations: Optional[int] = None
    top_k: int = 10
    max_tries: int = 1000              # draws allowed to find one new feasible architecture

    def __post_init__(self) -> None:
        problems = []
        if self.population < 2:
            problems.append("population must be at least 2")
        if self.generations < 0:
            problems.append("generations must be >= 0")
        if not 0 < self.parents_ratio < 1:
            problems.append("parents_ratio must be in (0, 1)")
        if not 0 <= self.mutation_ratio <= 1:
            problems.append("mutation_ratio must be in [0, 1]")
        if not 0 <= self.mutate_prob <= 1:
            problems.append("mutate_prob must be in [0, 1]")
        if self.crossover not in CROSSOVERS:
            problems.append(f"crossover must be one of {list(CROSSOVERS)}")
        if self.max_evaluations is not None and self.max_evaluations < 1:
            problems.append("max_evaluations must be at least 1")
        if self.top_k < 1:
            problems.append("top_k must be at least 1")
        if self.max_tries < 1:
            problems.append("max_tries must be at least 1")
        if problems:
            raise ValueError("invalid search options: " + "; ".join(problems))

    @property
    def parents(self) -> int:
        return max(1, round(self.population * self.parents_ratio))

    @property
    def evaluations(self) -> int:
        """Architectures a search scores unless it runs out of new feasible ones."""
        planned = self.population + self.generations * (self.population - self.parents)
        return planned if self.max_evaluations is None else min(planned, self.max_evaluations)


def evolution_search(space: SearchSpace, score_fn: ScoreFn, budget: Budget, cost_fn: CostFn, *,
                     latency_fn: Optional[LatencyFn] = None, fastest: Optional[Architecture] = None, seed: int = 0,
                     population: int = SearchOptions.population,
                     generations: int = SearchOptions.generations,
                     parents_ratio: float = SearchOptions.parents_ratio,
                     mutation_ratio: float = SearchOptions.mutation_ratio,
                     mutate_prob: float = SearchOptions.mutate_prob,
                     mutate_ramp: bool = SearchOptions.mutate_ramp,
                     crossover: str = SearchOptions.crossover,
                     max_evaluations: Optional[int] = SearchOptions.max_evaluations,
                     top_k: int = SearchOptions.top_k, max_tries: int = SearchOptions.max_tries,
                     progress: Optional[ProgressFn] = None,
                     should_stop: Optional[StopFn] = None) -> SearchResult:
    """Constrained evolution: once-for-all's evolution finder with repaired, never-repeated children.

    Scores at most ``population + generations * (population - parents)`` architectures, and
    at most ``max_evaluations`` (see :class:`SearchOptions`). Same seed and same scores ⇒ same
    result.
    """
    opts = SearchOptions(population, generations, parents_ratio, mutation_ratio, mutate_prob, mutate_ramp,
                         crossover, max_evaluations, top_k, max_tries)
    return _search("evolution", space, score_fn, budget, cost_fn, latency_fn, fastest, opts, seed, progress,
                   should_stop)


def random_search(space: SearchSpace, score_fn: ScoreFn, budget: Budget, cost_fn: CostFn, *,
                  latency_fn: Optional[LatencyFn] = None, fastest: Optional[Architecture] = None, seed: int = 0,
                  population: int = SearchOptions.population,
                  generations: int = SearchOptions.generations,
                  parents_ratio: float = SearchOptions.parents_ratio,
                  mutation_ratio: float = SearchOptions.mutation_ratio,
                  mutate_prob: float = SearchOptions.mutate_prob,
                  mutate_ramp: bool = SearchOptions.mutate_ramp,
                  crossover: str = SearchOptions.crossover,
                  max_evaluations: Optional[int] = SearchOptions.max_evaluations,
                  top_k: int = SearchOptions.top_k, max_tries: int = SearchOptions.max_tries,
                  progress: Optional[ProgressFn] = None,
                  should_stop: Optional[StopFn] = None) -> SearchResult:
    """The baseline, with :func:`evolution_search`'s signature: as many feasible random
    architectures as evolution scores with the same options, drawn by ``space.sample``
    (repaired the same way) and scored in batches of ``population``. The evolution-only
    options are validated and otherwise ignored.
    """
    opts = SearchOptions(population, generations, parents_ratio, mutation_ratio, mutate_prob, mutate_ramp,
                         crossover, max_evaluations, top_k, max_tries)
    return _search("random", space, score_fn, budget, cost_fn, latency_fn, fastest, opts, seed, progress,
                   should_stop)


def _search(strategy: str, space: SearchSpace, score_fn: ScoreFn, budget: Budget, cost_fn: CostFn,
            latency_fn: Optional[LatencyFn], fastest: Optional[Architecture], opts: SearchOptions, seed: int,
            progress: Optional[ProgressFn], should_stop: Optional[StopFn]) -> SearchResult:
    floor = budget.check_feasible(space, cost_fn, latency_fn, fastest)  # before any work
    rng = random.Random(seed)
    ev = _Evaluator(space, score_fn, budget, cost_fn, latency_fn, rng, opts.max_tries, floor)
    planned = opts.evaluations
    rates = mutation_rates(space.num_stages, opts.mutate_prob, opts.mutate_ramp)
    start = time.perf_counter()
    history: list[Generation] = []

    def sample() -> Architecture:
        return space.sample(rng)

    def fill(count: int, make: Callable[[], Architecture], batch: list[Architecture],
             taken: set[Architecture]) -> bool:
        """Append ``count`` new feasible architectures from ``make``, falling back to random
        draws; False when not even those find a new one (the feasible set is exhausted)."""
        for _ in range(count):
            arch = ev.novel(make, taken)
            if arch is None and make is not sample:
                arch = ev.novel(sample, taken)
            if arch is None:
                return False
            batch.append(arch)
            taken.add(arch)
        return True

    population: list[Architecture] = []
    exhausted = False
    index = 0
    while not exhausted and len(ev.scores) < planned:
        check_stop(should_stop)
        room = planned - len(ev.scores)
        taken = set(ev.scores)
        batch: list[Architecture] = []
        if index == 0 or strategy == "random":
            exhausted = not fill(min(opts.population, room), sample, batch, taken)
        else:
            parents = [p.arch for p in rank([ev.pick(a) for a in population])[:opts.parents]]

            def mutant() -> Architecture:
                return mutate(space, rng.choice(parents), rng, rates)

            def cross() -> Architecture:
                a, b = rng.choice(parents), rng.choice(parents)
                return block_crossover(a, b, rng) if opts.crossover == "block" else space.crossover(a, b, rng)

            children = min(opts.population - len(parents), room)
            mutations = min(round(opts.population * opts.mutation_ratio), children)
            exhausted = not (fill(mutations, mutant, batch, taken)
                             and fill(children - mutations, cross, batch, taken))
            population = parents
        if not batch:
            break
        ev.score(batch)  # one call per generation: the scorer may share work across it
        population = population + batch
        best = max(_finite(ev.scores[a]) for a in ev.scores)
        history.append(Generation(index, len(ev.scores), len(batch), best, time.perf_counter() - start))
        report(progress, len(ev.scores) / planned,
               f"searching: {len(ev.scores)}/{planned} architectures scored ({strategy}, generation "
               f"{index + 1}), best {best:.4f}")
        index += 1
    candidates = [ev.pick(a) for a in ev.scores]
    fronts = {name: pareto_front(candidates, name) for name in COSTS
              if getattr(candidates[0], name) is not None}
    return SearchResult(strategy=strategy, budget=budget, seed=seed, picks=rank(candidates)[:opts.top_k],
                        pareto=fronts[budget.front_cost], pareto_by_cost=fronts, evaluated=len(ev.scores),
                        history=history, candidates=candidates, exhausted=exhausted)


def blockwise_cost_fn(space: SearchSpace, in_channels: int, num_classes: int) -> CostFn:
    """``blockzoo.cost_model.cost`` as a sum of memoised per-block costs: same numbers, faster
    (repairing a draw costs one evaluation per shrinking step)."""
    fixed = prefix_cost(space, in_channels) + head_cost(space, num_classes)
    block = lru_cache(maxsize=None)(lambda m, expand: block_cost(space, m, expand))

    def cost_fn(arch: Architecture) -> Cost:
        total = fixed
        for m, expand in enumerate(arch.expand):
            total = total + block(m, expand)
        return total

    return cost_fn


def search_zoo(zoo: "BlockZoo", budget: Budget, strategy: str = "evolution", *,
               latency_table: Optional["LatencyTable"] = None, metric: str = "proxy_accuracy",
               seed: int = 0, progress: Optional[ProgressFn] = None,
               should_stop: Optional[StopFn] = None, prefix_cache: Optional["PrefixCache"] = None,
               **options: Any) -> SearchResult:
    """Search ``zoo``'s space for the best architectures under ``budget`` by ``metric``.

    ``metric`` is any signal of :mod:`blockzoo.signals` (a validation may have shown another one
    ranks this zoo's data best); a lower-is-better one (``kd_loss``) is minimised, and every
    point of the result carries the signal's own value. The proxy's signals come from
    :func:`blockzoo.proxy.score_architectures`, one call per generation, all
    sharing one :class:`blockzoo.proxy.PrefixCache` (``prefix_cache``, else a new one with the
    default bound for this search): the features of a prefix of blocks are computed once per
    search, not once per generation. Costs come from the analytic cost model and, when given,
    latency from ``latency_table`` (measured on the device the network will run on; required
    for ``max_latency_ms``). A zero-cost baseline is computed on the zoo's KD batches, MACs and
    params by the cost model. ``options`` go to :func:`evolution_search` / :func:`random_search`.
    """
    from .proxy import PrefixCache, score_architectures

    if strategy not in STRATEGIES:
        raise ValueError(f"unknown search strategy {strategy!r}; known: {list(STRATEGIES)}")
    if metric not in METRICS:
        raise ValueError(f"unknown search metric {metric!r}; known: {list(METRICS)}")
    space = zoo.space
    latency_fn, fastest = None, None
    if latency_table is not None:
        latency_table.check_compatible(space, zoo.in_channels, zoo.num_classes)
        latency_fn, fastest = latency_table.predict, latency_table.fastest()
    cache = PrefixCache() if prefix_cache is None else prefix_cache
    planned = SearchOptions(**options).evaluations
    scored = generations = 0

    def score_fn(archs: list[Architecture]) -> list[float]:
        # One call per generation, whose share of the search is len(archs) / planned: its
        # distillation (most of the first generation's time) and its scoring report inside it.
        nonlocal scored, generations
        start, share = scored / planned, len(archs) / planned
        generations += 1
        distill_share = 0.8 if zoo.missing_blocks(archs) else 0.0

        def within(low: float, high: float) -> Optional[ProgressFn]:
            if progress is None:
                return None
            where = f"; generation {generations}"
            return lambda f, message: report(progress, start + share * (low + (high - low) * f), message + where)

        zoo.ensure_blocks(archs, progress=within(0.0, distill_share), should_stop=should_stop)
        scores = score_architectures(zoo, archs, should_stop=should_stop, cache=cache,
                                     progress=within(distill_share, 1.0))
        scored += len(archs)
        return [getattr(s, metric) for s in scores]

    signal = get_signal(metric)
    if signal.source != "proxy":
        score_fn = _signal_score_fn(zoo, signal, should_stop)

    def oriented_score_fn(archs: list[Architecture]) -> list[float]:  # higher is better inside the search
        return [value if signal.higher_is_better else -value for value in score_fn(archs)]

    search = evolution_search if strategy == "evolution" else random_search
    result = search(space, oriented_score_fn, budget, blockwise_cost_fn(space, zoo.in_channels, zoo.num_classes),
                    latency_fn=latency_fn, fastest=fastest, seed=seed, progress=progress, should_stop=should_stop,
                    **options)
    return _as_measured(signal, result)


def _signal_score_fn(zoo: "BlockZoo", signal: Signal, should_stop: Optional[StopFn]) -> ScoreFn:
    """Scores of a signal other than the proxy's: a zero-cost baseline on the zoo's KD batches
    (computed as ``blockzoo.pipeline.score_on_zoo`` computes it, so the values agree with the
    zoo's scores), or an analytic cost."""
    if signal.name in COST_SIGNALS:
        cost_fn = blockwise_cost_fn(zoo.space, zoo.in_channels, zoo.num_classes)
        return lambda archs: [float(getattr(cost_fn(a), signal.name)) for a in archs]
    from .zerocost import score_zero_cost

    batches = list(zip(zoo.kd_data.batches(), zoo.kd_data.label_batches()))

    def score_fn(archs: list[Architecture]) -> list[float]:
        return [s[signal.name] for s in score_zero_cost(zoo.space, archs, [signal.name], batches, zoo.in_channels,
                                                        zoo.num_classes, should_stop=should_stop)]

    return score_fn


def _as_measured(signal: Signal, result: SearchResult) -> SearchResult:
    """A search of a lower-is-better signal ran on negated values: give its points their own values
    back (the order of picks and fronts stays the search's: best first)."""
    if signal.higher_is_better:
        return result

    def flip(picks: list[Pick]) -> list[Pick]:
        return [replace(p, score=-p.score) for p in picks]

    return replace(result, picks=flip(result.picks), pareto=flip(result.pareto),
                   pareto_by_cost={name: flip(front) for name, front in result.pareto_by_cost.items()},
                   candidates=flip(result.candidates),
                   history=[replace(g, best_score=-g.best_score) for g in result.history])
