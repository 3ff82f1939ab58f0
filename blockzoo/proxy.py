"""The BlockZoo proxy: accuracy of a candidate assembled from the zoo, on the T KD batches.

Per architecture (paper §3, "Scoring Model Candidates", plus DESIGN §3's BN fix):

1. assemble: reference prefix -> one zoo block per stage -> reference head;
2. recalibrate BatchNorm: reset every BN's running statistics and forward the T KD batches in
   train mode with a cumulative average (momentum=None), as once-for-all and DNA do — with
   the running statistics left by 20 KD steps most candidates score near chance;
3. measure accuracy on the T KD batches in eval mode (the proxy), and on held-out batches.

Prefix cache: a block's recalibrated statistics and outputs depend only on the blocks before
it, so architectures are visited in lexicographic block order and the features of a shared
prefix (stem ... stage m) are computed once and reused by every architecture that shares it.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Iterable, Optional, Sequence

import torch
from torch import nn

from .progress import ProgressFn, StopFn, check_stop, report
from .space import Architecture, unique
from .training import recalibrate_batchnorm  # noqa: F401  (part of the proxy's public API)
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
    train_out: list[torch.Tensor]   # per KD batch, produced with batch-statistics BN
    eval_out: torch.Tensor          # all KD batches at once, recalibrated running statistics
    heldout_out: torch.Tensor


def _batchnorms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def _run(module: nn.Module, prev: _Level, key: tuple, recalibrate: bool) -> _Level:
    """Recalibrate ``module``'s BN on ``prev.train_out`` (cumulative), then evaluate it."""
    module = copy.deepcopy(module)  # never touch the zoo's cached blocks
    if recalibrate:
        saved = [bn.momentum for bn in _batchnorms(module)]
        for bn in _batchnorms(module):
            bn.reset_running_stats()
            bn.momentum = None  # cumulative moving average over the T batches
        module.train()
        train_out = [module(x) for x in prev.train_out]
        for bn, momentum in zip(_batchnorms(module), saved):
            bn.momentum = momentum
    else:
        train_out = []
    module.eval()
    return _Level(key, train_out, module(prev.eval_out), module(prev.heldout_out))


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels).float().mean()) if len(labels) else float("nan")


def score_architectures(zoo: BlockZoo, archs: Iterable[Architecture | dict | str], *,
                        recalibrate: bool = True, progress: Optional[ProgressFn] = None,
                        should_stop: Optional[StopFn] = None) -> list[ProxyScore]:
    """Proxy scores of ``archs`` (in the given order), distilling missing blocks first."""
    parsed = [zoo.space.parse(a) for a in archs]
    if not parsed:
        return []
    todo = unique(parsed)
    zoo.ensure_blocks(todo, progress=None, should_stop=should_stop)
    kd = zoo.kd_data
    labels, heldout_labels = kd.labels, kd.heldout_labels
    root = _Level((), list(kd.batches()) if recalibrate else [], kd.inputs, kd.heldout_inputs)
    stack = [_run(zoo.reference.prefix, root, ("prefix",), recalibrate)]
    results: dict[Architecture, ProxyScore] = {}
    for n, arch in enumerate(sorted(todo, key=lambda a: a.expand)):
        check_stop(should_stop)
        # Keep the cached levels this architecture shares with the previous one.
        shared = 0
        while shared + 1 < len(stack) and stack[shared + 1].key == arch.expand[:shared + 1]:
            shared += 1
        del stack[shared + 1:]
        for m in range(shared, zoo.space.num_stages):
            stack.append(_run(zoo.load_block(m, arch.expand[m]), stack[-1], arch.expand[:m + 1], recalibrate))
        head = _run(zoo.reference.head, stack[-1], ("head",), recalibrate)
        kd_losses = [zoo.block_stats(m, e).kd_loss for m, e in enumerate(arch.expand)]
        results[arch] = ProxyScore(
            arch_id=arch.id,
            proxy_accuracy=_accuracy(head.eval_out, labels),
            kd_loss=sum(kd_losses) / len(kd_losses),
            heldout_accuracy=_accuracy(head.heldout_out, heldout_labels),
        )
        report(progress, (n + 1) / len(todo), f"scored {n + 1}/{len(todo)} architectures")
    return [results[a] for a in parsed]
