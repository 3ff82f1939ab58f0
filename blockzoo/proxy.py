"""The BlockZoo proxy: accuracy of a candidate assembled from the zoo, on the T KD batches.

Per architecture (paper §3, "Scoring Model Candidates", plus DESIGN §3's BN fix):

1. assemble: reference prefix -> one zoo block per stage -> reference head;
2. recalibrate BatchNorm: reset every BN's running statistics and forward the T KD batches in
   train mode with a cumulative average (momentum=None), as once-for-all and DNA do — with
   the running statistics left by 20 KD steps most candidates score near chance (the T
   batches go through each block in one stacked pass: :mod:`blockzoo.recalibration`);
3. measure accuracy on the T KD batches in eval mode (the proxy), and on held-out batches.

Prefix cache: a block's recalibrated statistics and outputs depend only on the blocks before
it (and on the zoo's KD batches), so the features after a prefix of the network (stem ...
stage m) — a *level* — are the same in every architecture that starts with that prefix.
Within one call, architectures are visited in lexicographic block order and the levels of
the current prefix are kept on a stack, so a shared prefix is computed once per call. A
:class:`PrefixCache` passed to several calls also keeps levels *between* calls (bounded,
least recently used first out): a search scores one generation per call, and children share
their parents' early stages, so levels computed for earlier generations are reused.
"""

from __future__ import annotations

import copy
import threading
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator, Optional

import torch
from torch import nn

from .progress import ProgressFn, StopFn, check_stop, report
from .space import Architecture, unique
from .recalibration import use_grouped_batchnorm
from .training import channels_last, recalibrate_batchnorm  # noqa: F401  (part of the proxy's public API)
from .zoo import BlockZoo


@dataclass(frozen=True)
class ProxyScore:
    arch_id: str
    proxy_accuracy: float    # the paper's proxy: accuracy on the T KD batches (BN recalibrated)
    kd_loss: float           # mean KD loss (MSE) of the architecture's blocks
    heldout_accuracy: float  # accuracy on held-out training batches never used for KD

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Level:
    """Features after some prefix of the network, for the recalibration and evaluation passes."""

    key: tuple
    train_out: Optional[torch.Tensor]  # the T KD batches stacked, each normalised with its own BN statistics
    eval_out: torch.Tensor             # KD then held-out images, recalibrated running statistics

    @property
    def nbytes(self) -> int:
        return self.eval_out.nbytes + (self.train_out.nbytes if self.train_out is not None else 0)


DEFAULT_CACHE_BYTES = 2**30  # ample for a 1,000-evaluation search on mbv3-tiny (docs/core-api.md, "Speed notes")


class PrefixCache:
    """Levels (features after stem ... stage m) kept across :func:`score_architectures` calls.

    Create one per search (or per batch of related calls) and pass it as ``cache=``. A level
    is stored under everything it depends on: the zoo (its directory, the hashes of its
    reference and KD batches, its device), the ``recalibrate`` flag and the block codes of the prefix
    (``arch.expand[:m + 1]``; ``()`` is the reference stem). Scores are bit-identical to
    scoring without a cache: a cached level holds exactly the tensors the computation would
    produce. Levels of a whole architecture (after the last stage) are never stored — each
    architecture's are needed once — and a search scores each architecture once.

    Bounded: at most ``max_bytes`` of tensors (and at most ``max_entries`` levels, if set);
    the least recently used level goes first. A level larger than the bound is not stored.
    Counters: ``computed`` (levels computed by calls using this cache, the head excluded),
    ``reused`` (levels taken from the cache), ``evicted``; ``nbytes``/``peak_bytes``.
    Thread-safe; the tensors stay where the zoo computes (its device).
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES, max_entries: Optional[int] = None) -> None:
        if max_bytes < 0 or (max_entries is not None and max_entries < 0):
            raise ValueError("max_bytes and max_entries must be >= 0")
        self.max_bytes, self.max_entries = max_bytes, max_entries
        self._levels: OrderedDict[tuple, _Level] = OrderedDict()
        self._lock = threading.Lock()
        self.nbytes = self.peak_bytes = 0
        self.computed = self.reused = self.evicted = 0

    def __len__(self) -> int:
        return len(self._levels)

    def __contains__(self, key: tuple) -> bool:
        return key in self._levels

    def get(self, key: tuple) -> Optional[_Level]:
        with self._lock:
            level = self._levels.get(key)
            if level is not None:
                self._levels.move_to_end(key)
                self.reused += 1
            return level

    def put(self, key: tuple, level: _Level) -> None:
        size = level.nbytes
        with self._lock:
            if size > self.max_bytes or self.max_entries == 0 or key in self._levels:
                return
            self._levels[key] = level
            self.nbytes += size
            while self.nbytes > self.max_bytes or (self.max_entries is not None
                                                   and len(self._levels) > self.max_entries):
                _, old = self._levels.popitem(last=False)
                self.nbytes -= old.nbytes
                self.evicted += 1
            self.peak_bytes = max(self.peak_bytes, self.nbytes)

    def count_computed(self) -> None:
        with self._lock:
            self.computed += 1

    def clear(self) -> None:
        with self._lock:
            self._levels.clear()
            self.nbytes = 0

    def stats(self) -> dict:
        return {"computed": self.computed, "reused": self.reused, "evicted": self.evicted,
                "entries": len(self._levels), "bytes": self.nbytes, "peak_bytes": self.peak_bytes,
                "max_bytes": self.max_bytes, "max_entries": self.max_entries}


def _zoo_key(zoo: BlockZoo) -> tuple:
    """What identifies a zoo's levels: its directory, the hashes of its reference and KD batches,
    and the device it computes on (stored blocks never change: a block is distilled only when
    its file is missing)."""
    manifest = zoo.manifest
    return (str(zoo.root.resolve()), manifest["reference"]["sha256"], manifest["kd_batches"]["sha256"],
            str(getattr(zoo, "device", "cpu")))


class _WorkingCopy:
    """A copy of a zoo module that shares its parameters and has its own buffers (BN statistics).

    Recalibration only writes BN buffers, so this is all of the module the proxy must not
    touch; its BNs are :class:`GroupedBatchNorm2d` twins (T batches in one pass). It is made
    once per module and reused (a deep copy per level is a visible share of scoring), with the buffers
    reset to the module's own before each use.
    """

    def __init__(self, module: nn.Module) -> None:
        self.source = tuple(module.buffers())
        self.module = copy.deepcopy(module, {id(p): p for p in module.parameters()})
        self.batchnorms = use_grouped_batchnorm(self.module)
        # Only the BNs behave differently in train mode; flipping just them is cheaper than
        # module.train()/eval() over every submodule. Dropout stays off.
        self.module.eval()
        self.buffers = tuple(self.module.buffers())
        assert [n for n, _ in module.named_buffers()] == [n for n, _ in self.module.named_buffers()]
        self.lock = threading.Lock()

    def matches(self, module: nn.Module) -> bool:
        """False if ``module``'s buffers were replaced since (e.g. moved to another device)."""
        return all(a is b for a, b in zip(self.source, module.buffers()))

    def reset(self) -> None:
        for mine, theirs in zip(self.buffers, self.source):
            mine.copy_(theirs)


_working: "weakref.WeakKeyDictionary[nn.Module, _WorkingCopy]" = weakref.WeakKeyDictionary()
_working_lock = threading.Lock()


@contextmanager
def _working_copy(module: nn.Module) -> Iterator[_WorkingCopy]:
    """``module``'s working copy, as a fresh copy would be; a private one while another thread uses it."""
    with _working_lock:
        work = _working.get(module)
        if work is None or not work.matches(module):
            work = _working[module] = _WorkingCopy(module)
    if not work.lock.acquire(blocking=False):
        yield _WorkingCopy(module)
        return
    try:
        work.reset()
        yield work
    finally:
        work.lock.release()


# Input bytes per forward call. Small chunks keep a high-resolution stage's expanded activations
# in the CPU caches; large ones save per-call overhead at low resolution (docs/core-api.md, "Speed notes").
CHUNK_BYTES = 2**20


def _forward_in_chunks(net: nn.Module, x: torch.Tensor, multiple: int = 1) -> torch.Tensor:
    """``net(x)`` in chunks of about CHUNK_BYTES of input, each a whole number of ``multiple`` images."""
    per_image = max(x[:1].nbytes, 1)
    size = max(multiple, CHUNK_BYTES // per_image // multiple * multiple)
    if len(x) <= size:
        return net(x)
    return torch.cat([net(chunk) for chunk in x.split(size)])


@torch.no_grad()
def _run(module: nn.Module, prev: _Level, key: tuple, group_size: Optional[int]) -> _Level:
    """Recalibrate ``module``'s BN on ``prev.train_out`` (groups of ``group_size``), then evaluate it.

    ``group_size=None``: no recalibration (the module's own running statistics). Runs on a
    working copy: the zoo's cached blocks and the reference are never touched.
    """
    with _working_copy(module) as work:
        net = work.module
        train_out = None
        if group_size:
            for bn in work.batchnorms:
                bn.start(group_size)
                bn.training = True
            train_out = _forward_in_chunks(net, prev.train_out, multiple=group_size)
            for bn in work.batchnorms:
                bn.finish()
                bn.training = False
        return _Level(key, train_out, _forward_in_chunks(net, prev.eval_out))


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels).float().mean()) if len(labels) else float("nan")


def score_architectures(zoo: BlockZoo, archs: Iterable[Architecture | dict | str], *,
                        recalibrate: bool = True, progress: Optional[ProgressFn] = None,
                        should_stop: Optional[StopFn] = None,
                        cache: Optional[PrefixCache] = None) -> list[ProxyScore]:
    """Proxy scores of ``archs`` (in the given order), distilling missing blocks first.

    Shared prefixes are computed once per call; with ``cache`` (a :class:`PrefixCache`), also
    once across the calls that share the cache. Without one, nothing outlives the call.
    """
    parsed = [zoo.space.parse(a) for a in archs]
    if not parsed:
        return []
    todo = unique(parsed)
    zoo.ensure_blocks(todo, progress=None, should_stop=should_stop)
    kd = zoo.kd_data
    labels, heldout_labels = kd.labels, kd.heldout_labels
    num_stages = zoo.space.num_stages
    scope = (_zoo_key(zoo), bool(recalibrate)) if cache is not None else ()

    def level(prev: _Level, expand: tuple) -> _Level:
        """The level after the blocks ``expand`` (() = the stem): from the cache, else computed."""
        key = scope + (expand,)
        out = cache.get(key) if cache is not None else None
        if out is None:
            module = zoo.load_block(len(expand) - 1, expand[-1]) if expand else zoo.reference.prefix
            out = _run(module, prev, expand, group_size)
            if cache is not None:
                cache.count_computed()
                if len(expand) < num_stages:  # a whole architecture's level is needed once
                    cache.put(key, out)
        return out

    group_size = kd.batch_size if recalibrate else None
    root = _Level((), kd.inputs if recalibrate else None,
                  channels_last(torch.cat([kd.inputs, kd.heldout_inputs])))
    n_kd = len(labels)
    stack = [level(root, ())]
    results: dict[Architecture, ProxyScore] = {}
    for n, arch in enumerate(sorted(todo, key=lambda a: a.expand)):
        check_stop(should_stop)
        # Keep the levels this architecture shares with the previous one.
        shared = 0
        while shared + 1 < len(stack) and stack[shared + 1].key == arch.expand[:shared + 1]:
            shared += 1
        del stack[shared + 1:]
        for m in range(shared, num_stages):
            stack.append(level(stack[-1], arch.expand[:m + 1]))
        head = _run(zoo.reference.head, stack[-1], ("head",), group_size)
        kd_losses = [zoo.block_stats(m, e).kd_loss for m, e in enumerate(arch.expand)]
        results[arch] = ProxyScore(
            arch_id=arch.id,
            proxy_accuracy=_accuracy(head.eval_out[:n_kd], labels),
            kd_loss=sum(kd_losses) / len(kd_losses),
            heldout_accuracy=_accuracy(head.eval_out[n_kd:], heldout_labels),
        )
        report(progress, (n + 1) / len(todo), f"scoring: {n + 1}/{len(todo)} architectures")
    return [results[a] for a in parsed]
