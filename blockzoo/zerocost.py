"""Zero-cost baseline proxies (DESIGN §4): the baselines of the paper's Table 1.

The proxies follow *zero-cost-nas* — M. S. Abdelfattah, A. Mehrotra, Ł. Dudziak, N. D. Lane,
"Zero-Cost Proxies for Lightweight NAS", ICLR 2021 — and NASWOT — J. Mellor, J. Turner,
A. Storkey, E. J. Crowley, "Neural Architecture Search without Training", ICML 2021. As in the
paper we reproduce (Table 1), each proxy is averaged over the same T batches that BlockZoo's own
proxy uses, and every architecture sees the same fixed batches.

Metrics (``METRICS``; higher is better for every one, none is negated):

* ``gradnorm``: Σ over Conv2d/Linear layers of ‖∂L/∂W‖₂ (cross-entropy, mean over the batch).
* ``snip``: Σ |W ⊙ ∂L/∂W| over Conv2d/Linear weights.
* ``fisher``: for every Conv2d/Linear output z (one "channel" per output channel / feature),
  ½·mean_n(Σ_spatial z·∂L/∂z)², summed over channels and layers.
* ``synflow``: on a float64 copy with every BatchNorm replaced by ``nn.Identity`` and all
  parameters replaced by their absolute values, R = Σ logits for one all-ones input;
  score Σ |θ ⊙ ∂R/∂θ| over Conv2d/Linear weights.
* ``naswot``: binary codes (pre-activation > 0) of the inputs of every ``nn.ReLU`` **and
  ``nn.Hardswish``** module over one batch (``naswot_batch_size``, default 128, or what the batch
  holds), K = Σ_layers c·cᵀ + (1−c)(1−c)ᵀ, score = log|det K| (``slogdet``) in float64 (the
  integer kernel entries are exact, see :func:`naswot`).
* ``l2norm``: Σ ‖W‖_F over Conv2d/Linear weights of the network as given (random init).
* ``flops``: analytic multiply-accumulates from :func:`blockzoo.cost_model.cost` — MACs, the
  quantity the NAS literature (MobileNetV3, OFA, the paper) calls "FLOPs"; ×2 would not change a
  ranking. ``params``: the analytic parameter count. Both need ``space`` and ``arch``.

Where we differ from the reference code, and why:

* Only Conv2d/Linear *weights* count, everywhere (DESIGN §4); biases and BN affine parameters
  never enter a sum (synflow still takes |θ| of every parameter before the forward pass).
* Gradient proxies run with BatchNorm in train mode (batch statistics, as the originals) but with
  Dropout off, so that a score is a deterministic function of weights and batches.
* NASWOT uses h-swish layers as well as ReLU (MobileNetV3 uses both; h-swish(x) > 0 ⇔ x > 0, so
  the code means the same thing). Its BatchNorms also run in train mode, as in Mellor et al.
* zero-cost-nas removes BN for synflow by rebuilding the model; we replace BN modules with
  ``nn.Identity`` on a deep copy, and switch the copy to eval mode (no dropout).
* Non-finite values (synflow overflow, a singular NASWOT kernel, …) become ``-inf`` — the worst
  score, last in a descending sort — and are counted. A batch-averaged score is ``-inf`` as soon
  as one of its batches is non-finite.
* synflow, l2norm, flops and params do not depend on the data: they are evaluated once and that
  value stands for every batch (their non-finite count is then 0 or 1).

The caller's network is never modified: each data-dependent metric works on a deep copy (train
mode updates BN running statistics), gradients come from ``torch.autograd.grad`` so no ``.grad``
is written, and the caller's train/eval mode is left as it was.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cost_model import cost
from .nets import build_network
from .progress import ProgressFn, StopFn, check_stop, report
from .space import Architecture, SearchSpace

METRICS: tuple[str, ...] = ("gradnorm", "snip", "fisher", "synflow", "naswot", "l2norm", "flops", "params")

# Metrics whose value does not depend on the batches: computed once per network.
DATA_FREE: frozenset[str] = frozenset({"synflow", "l2norm", "flops", "params"})

NASWOT_BATCH_SIZE = 128

Batch = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class MetricValue:
    """One metric for one network: the batch-averaged ``value`` and how many evaluations were non-finite."""

    value: float
    nonfinite: int = 0


@dataclass(frozen=True, eq=False)
class ZeroCostScores(Mapping[str, float]):
    """The zero-cost scores of one architecture.

    A read-only mapping ``metric -> value`` (so ``scores["synflow"]`` and ``dict(scores)`` work),
    plus ``nonfinite`` (metric -> number of non-finite evaluations replaced by ``-inf``) and
    ``seconds`` (metric -> wall time spent on it). ``-inf`` is not valid JSON: serialise it as null.
    """

    arch_id: str
    values: dict[str, float]
    nonfinite: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def __getitem__(self, name: str) -> float:
        return self.values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"arch_id": self.arch_id, "values": dict(self.values),
                "nonfinite": dict(self.nonfinite), "seconds": dict(self.seconds)}


# ---------------------------------------------------------------------------------------------
# helpers

def _weighted_layers(net: nn.Module) -> list[nn.Module]:
    """The Conv2d/Linear modules: the only layers whose weights count (DESIGN §4)."""
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _scratch_copy(net: nn.Module) -> nn.Module:
    """A deep copy to run on: BN in train mode (batch statistics), Dropout off, grads enabled.

    Train-mode forwards update BN running statistics, so they never run on the caller's network.
    """
    work = copy.deepcopy(net)
    work.train()
    for m in work.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()  # keep scores deterministic; the papers' NAS-Bench cells have no dropout
    for p in work.parameters():
        p.requires_grad_(True)  # a caller may have frozen parameters; we need their gradients
    return work


def _on_device(net: nn.Module, batch: Batch) -> Batch:
    p = next(net.parameters(), None)
    if p is None:
        return batch
    x, y = batch
    return x.to(p.device, p.dtype), y.to(p.device)


def _weight_grads(work: nn.Module, batch: Batch) -> tuple[list[Tensor], list[Tensor]]:
    """Conv/linear weights and ∂CE/∂W on one batch (layers that do not reach the loss get zeros)."""
    x, y = _on_device(work, batch)
    weights = [m.weight for m in _weighted_layers(work)]
    loss = F.cross_entropy(work(x), y)
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return weights, [torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads)]


def _finite_or_worst(value: float) -> tuple[float, bool]:
    return (value, False) if math.isfinite(value) else (float("-inf"), True)


def _check_name(name: str) -> None:
    if name not in METRICS:
        raise ValueError(f"unknown zero-cost metric {name!r}; known metrics: {list(METRICS)}")


# ---------------------------------------------------------------------------------------------
# one function per metric; each returns the raw value for one batch (or for the network).
# They run on ``net`` as given (train-mode BN updates its statistics): ``measure_metric`` hands
# them a scratch copy, so call that on a caller's network.

def gradnorm(net: nn.Module, batch: Batch) -> float:
    """Σ_layers ‖∂L/∂W‖₂ (zero-cost-nas ``grad_norm``)."""
    _, grads = _weight_grads(net, batch)
    return float(sum(g.norm() for g in grads))


def snip(net: nn.Module, batch: Batch) -> float:
    """Σ |W ⊙ ∂L/∂W|: the gradient w.r.t. a multiplicative mask of ones (Lee et al. 2019)."""
    weights, grads = _weight_grads(net, batch)
    with torch.no_grad():
        return float(sum((w * g).abs().sum() for w, g in zip(weights, grads)))


def fisher(net: nn.Module, batch: Batch) -> float:
    """Σ_layers Σ_channels ½·mean_n(Σ_spatial z·∂L/∂z)² on Conv2d/Linear outputs z."""
    outputs: list[Tensor] = []

    def keep_output(_module: nn.Module, _inputs: Any, out: Tensor) -> Tensor:
        outputs.append(out)
        # Hand on a copy: an in-place activation after the conv (SE's gate, the head's h-swish)
        # would otherwise overwrite z and re-point its autograd history.
        return out.clone()

    handles = [m.register_forward_hook(keep_output) for m in _weighted_layers(net)]
    try:
        x, y = _on_device(net, batch)
        loss = F.cross_entropy(net(x), y)
    finally:
        for h in handles:
            h.remove()
    grads = torch.autograd.grad(loss, outputs, allow_unused=True)
    total = 0.0
    with torch.no_grad():
        for z, g in zip(outputs, grads):
            if g is None:
                continue
            per_sample = (z * g).flatten(2).sum(2) if z.dim() > 2 else z * g  # n × channels
            total += float((0.5 * per_sample.pow(2).mean(0)).sum())
    return total


def synflow(net: nn.Module, input_shape: Sequence[int]) -> float:
    """Σ |θ ⊙ ∂R/∂θ| with R = Σ logits of |θ|-weighted, BN-free, float64 copy on an all-ones input."""
    work = copy.deepcopy(net).double().eval()
    for parent in list(work.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(parent, name, nn.Identity())  # BN removed, as zero-cost-nas's synflow
    with torch.no_grad():
        for p in work.parameters():
            p.abs_()
    for p in work.parameters():
        p.requires_grad_(True)
    p0 = next(work.parameters(), None)
    ones = torch.ones((1, *input_shape), dtype=torch.float64, device=None if p0 is None else p0.device)
    weights = [m.weight for m in _weighted_layers(work)]
    r = work(ones).sum()
    if not torch.isfinite(r):
        return float("nan")  # overflow: gradients would be meaningless
    grads = torch.autograd.grad(r, weights, allow_unused=True)
    with torch.no_grad():
        return float(sum((w * g).abs().sum() for w, g in zip(weights, grads) if g is not None))


def naswot(net: nn.Module, batch: Batch, batch_size: int = NASWOT_BATCH_SIZE) -> float:
    """log|det K| of the binary-code kernel of ReLU and h-swish inputs (Mellor et al. 2021)."""
    x, _ = _on_device(net, batch)
    x = x[:batch_size]
    n = x.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=x.device)

    def add_codes(_module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        # A pre-hook sees the pre-activation before an in-place activation overwrites it.
        units = inputs[0][0].numel()
        # c·cᵀ + (1−c)(1−c)ᵀ counts agreements; with s = 2c − 1 ∈ {±1} it equals
        # (s·sᵀ + units) / 2: one product instead of two. Every partial sum is an integer of
        # magnitude ≤ units, exact in float32 below 2^24, so float32 gives the float64 result.
        dtype = torch.float32 if units < 2**24 else torch.float64
        s = (inputs[0].detach().reshape(n, -1) > 0).to(dtype) * 2 - 1
        kernel.add_(((s @ s.T).double() + units) / 2)

    handles = [m.register_forward_pre_hook(add_codes)
               for m in net.modules() if isinstance(m, (nn.ReLU, nn.Hardswish))]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    sign, logabsdet = torch.linalg.slogdet(kernel)
    return float("-inf") if sign == 0 else float(logabsdet)


def l2norm(net: nn.Module) -> float:
    """Σ ‖W‖_F over Conv2d/Linear weights."""
    with torch.no_grad():
        return float(sum(torch.linalg.vector_norm(m.weight) for m in _weighted_layers(net)))


# ---------------------------------------------------------------------------------------------
# public entry points

def measure_metric(name: str, net: nn.Module, batches: Sequence[Batch], *,
                   space: SearchSpace | None = None, arch: Architecture | dict | str | None = None,
                   in_channels: int | None = None, num_classes: int | None = None,
                   naswot_batch_size: int = NASWOT_BATCH_SIZE) -> MetricValue:
    """Metric ``name`` of ``net`` averaged over ``batches``, with its count of non-finite evaluations.

    ``batches`` are ``(images N×C×H×W, labels N)`` pairs; ``flops``/``params`` ignore them but
    need ``space``, ``arch``, ``in_channels`` and ``num_classes``. ``net`` is left untouched.
    """
    _check_name(name)
    if name in ("flops", "params"):
        missing = [k for k, v in (("space", space), ("arch", arch), ("in_channels", in_channels),
                                  ("num_classes", num_classes)) if v is None]
        if missing:
            raise ValueError(f"metric {name!r} is analytic and needs {missing} (got None)")
        c = cost(space, arch, in_channels, num_classes)
        return MetricValue(float(c.macs if name == "flops" else c.params))
    if name == "l2norm":
        value, bad = _finite_or_worst(l2norm(net))
        return MetricValue(value, int(bad))
    if not batches:
        raise ValueError(f"metric {name!r} needs at least one (images, labels) batch")
    if name == "synflow":
        value, bad = _finite_or_worst(synflow(net, tuple(batches[0][0].shape[1:])))
        return MetricValue(value, int(bad))
    if naswot_batch_size < 1:
        raise ValueError(f"naswot_batch_size must be >= 1, got {naswot_batch_size}")

    work = _scratch_copy(net)  # one copy for all batches: BN uses batch statistics in train mode
    values, nonfinite = [], 0
    for batch in batches:
        if name == "naswot":
            raw = naswot(work, batch, naswot_batch_size)
        else:
            raw = {"gradnorm": gradnorm, "snip": snip, "fisher": fisher}[name](work, batch)
        value, bad = _finite_or_worst(raw)
        values.append(value)
        nonfinite += bad
    return MetricValue(float("-inf") if nonfinite else sum(values) / len(values), nonfinite)


def compute_metric(name: str, net: nn.Module, batches: Sequence[Batch], *,
                   space: SearchSpace | None = None, arch: Architecture | dict | str | None = None,
                   in_channels: int | None = None, num_classes: int | None = None,
                   naswot_batch_size: int = NASWOT_BATCH_SIZE) -> float:
    """Metric ``name`` of ``net`` averaged over ``batches`` (-inf if non-finite); see ``measure_metric``."""
    return measure_metric(name, net, batches, space=space, arch=arch, in_channels=in_channels,
                          num_classes=num_classes, naswot_batch_size=naswot_batch_size).value


def score_zero_cost(space: SearchSpace, archs: Sequence[Architecture | dict | str], metrics: Sequence[str],
                    batches: Sequence[Batch], in_channels: int, num_classes: int, *, seed: int = 0,
                    device: str | torch.device = "cpu", naswot_batch_size: int = NASWOT_BATCH_SIZE,
                    progress: ProgressFn | None = None,
                    should_stop: StopFn | None = None) -> list[ZeroCostScores]:
    """Zero-cost scores of each architecture, one :class:`ZeroCostScores` (a metric→value mapping) per arch.

    Every network is built by :func:`blockzoo.nets.build_network` right after
    ``torch.manual_seed(seed)`` (same init rule for all), inside ``fork_rng`` so the caller's
    RNG state is unchanged; every metric sees the same ``batches``.
    """
    metrics = list(metrics)
    for name in metrics:
        _check_name(name)
    device = torch.device(device)
    batches = [(x.to(device), y.to(device)) for x, y in batches]
    results: list[ZeroCostScores] = []
    for i, a in enumerate(archs):
        check_stop(should_stop)
        arch = space.parse(a)
        report(progress, i / max(1, len(archs)), f"zero-cost: {i}/{len(archs)} architectures, now {arch.id}")
        with torch.random.fork_rng(devices=[]):  # init runs on the CPU generator, then moves
            torch.manual_seed(seed)
            net = build_network(space, arch, in_channels, num_classes)
        net = net.to(device)
        values, nonfinite, seconds = {}, {}, {}
        for name in metrics:
            start = time.perf_counter()
            m = measure_metric(name, net, batches, space=space, arch=arch, in_channels=in_channels,
                               num_classes=num_classes, naswot_batch_size=naswot_batch_size)
            seconds[name] = time.perf_counter() - start
            values[name], nonfinite[name] = m.value, m.nonfinite
        results.append(ZeroCostScores(arch.id, values, nonfinite, seconds))
    report(progress, 1.0, f"zero-cost: {len(results)}/{len(archs)} architectures")
    return results


__all__ = [
    "METRICS", "MetricValue", "ZeroCostScores", "compute_metric", "fisher", "gradnorm", "l2norm",
    "measure_metric", "naswot", "score_zero_cost", "snip", "synflow",
]
