"""The two jobs both the ``blockzoo`` CLI and the service's worker run on a zoo: score, export.

Each has one implementation here; the callers only choose where results go (a table or JSON on
stdout, score rows and a job result in the database) and how progress shows (one bar per phase,
or slices of a job's progress).

Scoring (:func:`score_on_zoo`) computes, per architecture, the zoo proxy's metrics
(:data:`PROXY_METRICS`, always all three together) and any requested zero-cost baselines
(``blockzoo.zerocost``, on the zoo's KD batches: the data the proxy itself sees). Pairs
``(arch_id, metric)`` the caller already knows are not computed again. Values are floats, or
None where the metric is not finite.

Exporting (:func:`export_to_file`) writes the weights of one assembled architecture
(``blockzoo.export``) atomically and describes the file.

Both distil the blocks the architectures need and a lazy zoo lacks first. Importing this
module does not import torch (the API process reads :data:`PROXY_METRICS` from it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from .files import write_atomic
from .jsonable import finite_or_none
from .progress import PhaseProgressFn, StopFn, check_stop, in_phase
from .space import Architecture, unique

if TYPE_CHECKING:
    from .zoo import BlockZoo

# Metrics the zoo proxy always reports (blockzoo.proxy.ProxyScore); computed together.
PROXY_METRICS: tuple[str, ...] = ("proxy_accuracy", "kd_loss", "heldout_accuracy")
SCORE_PHASES: tuple[str, ...] = ("distilling", "scoring", "zero-cost")
EXPORT_PHASES: tuple[str, ...] = ("distilling", "assembling")

ScoreKey = tuple[str, str]                      # (arch_id, metric)
ScoreValues = dict[ScoreKey, Optional[float]]   # None: the metric was not finite
ZooSource = Union["BlockZoo", Callable[[], "BlockZoo"]]
DistilledFn = Callable[["BlockZoo", Sequence[Architecture]], None]  # the zoo, whose blocks they are
ValuesFn = Callable[[ScoreValues], None]


def zero_cost_metrics(names: Iterable[str]) -> list[str]:
    """The zero-cost baselines among ``names``, in order, without repeats or proxy metrics.

    Naming a proxy metric is accepted and changes nothing (they are always computed). Raises
    ``ValueError`` naming the unknown ones. Imports ``blockzoo.zerocost`` (torch) only when a
    name is not a proxy metric.
    """
    baselines = [n for n in dict.fromkeys(names) if n not in PROXY_METRICS]
    if not baselines:
        return []
    from .zerocost import METRICS

    unknown = [n for n in baselines if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS + PROXY_METRICS)}")
    return baselines


@dataclass
class ScoreRun:
    """What :func:`score_on_zoo` computed: only the values it did not already know."""

    values: ScoreValues = field(default_factory=dict)
    blocks_distilled: int = 0


def score_on_zoo(zoo: ZooSource, archs: Sequence[Architecture], metrics: Iterable[str] = (), *,
                 known: Container[ScoreKey] = (), progress: Optional[PhaseProgressFn] = None,
                 should_stop: Optional[StopFn] = None, on_distilled: Optional[DistilledFn] = None,
                 on_values: Optional[ValuesFn] = None) -> ScoreRun:
    """Score ``archs`` on ``zoo``: the proxy metrics, plus the zero-cost baselines in ``metrics``.

    ``zoo``: a :class:`~blockzoo.zoo.BlockZoo`, or a function opening one; it is called only if
    something is missing from ``known``. ``metrics``: extra metric names (checked first by
    :func:`zero_cost_metrics`, before any slow work; proxy metric names are ignored).
    ``known``: ``(arch_id, metric)`` pairs not to compute again (e.g. the cached score rows).
    An architecture is scored by the proxy if any of its proxy metrics is unknown (then all
    three come back), by the zero-cost phase if any requested baseline is unknown.

    Phases, in order, each reported as ``progress(phase, fraction, message)``:
    ``"distilling"`` the blocks the proxy needs and the zoo lacks, ``"scoring"`` the proxy,
    ``"zero-cost"`` the baselines; a phase with nothing to do is not reported. ``should_stop``
    is checked between and inside phases (``blockzoo.progress.Cancelled``).
    ``on_distilled(zoo, archs)`` runs once the blocks of those architectures are on disk, and
    ``on_values(values)`` with each phase's new values as soon as they exist: persist them there
    and a later phase failing or being cancelled loses nothing.

    Returns a :class:`ScoreRun`: the new values per ``(arch_id, metric)`` (None where not
    finite) and the number of blocks distilled.
    """
    baselines = zero_cost_metrics(metrics)
    todo = unique(archs)
    need_proxy = [a for a in todo if any((a.id, m) not in known for m in PROXY_METRICS)]
    need_zero_cost = [a for a in todo if any((a.id, m) not in known for m in baselines)]
    run = ScoreRun()
    if not need_proxy and not need_zero_cost:
        return run
    opened: BlockZoo = zoo() if callable(zoo) else zoo

    if need_proxy:
        from .proxy import score_architectures

        _start(progress, "distilling", f"distilling the blocks of {len(need_proxy)} architecture(s)")
        run.blocks_distilled = opened.ensure_blocks(need_proxy, progress=in_phase(progress, "distilling"),
                                                    should_stop=should_stop)
        if on_distilled is not None:
            on_distilled(opened, need_proxy)
        check_stop(should_stop)
        _start(progress, "scoring", f"scoring {len(need_proxy)} architecture(s)")
        scores = score_architectures(opened, need_proxy, progress=in_phase(progress, "scoring"),
                                     should_stop=should_stop)
        _publish(run, {(s.arch_id, m): finite_or_none(getattr(s, m)) for s in scores for m in PROXY_METRICS},
                 on_values)

    if need_zero_cost:
        from .zerocost import score_zero_cost

        check_stop(should_stop)
        _start(progress, "zero-cost", f"{', '.join(baselines)} of {len(need_zero_cost)} architecture(s)")
        batches = list(zip(opened.kd_data.batches(), opened.kd_data.label_batches()))
        scores = score_zero_cost(opened.space, need_zero_cost, baselines, batches, opened.in_channels,
                                 opened.num_classes, progress=in_phase(progress, "zero-cost"),
                                 should_stop=should_stop)
        _publish(run, {(s.arch_id, m): finite_or_none(s[m]) for s in scores for m in baselines}, on_values)
    return run


def export_to_file(zoo: "BlockZoo", arch: Architecture, path: Path | str, *, spec_file: bool = False,
                   progress: Optional[PhaseProgressFn] = None, should_stop: Optional[StopFn] = None,
                   on_distilled: Optional[DistilledFn] = None) -> dict[str, Any]:
    """Write the weights of ``arch`` assembled from ``zoo`` to ``path`` (safetensors), atomically.

    Distils the blocks ``arch`` needs and the zoo lacks first (phase ``"distilling"``; then
    ``on_distilled(zoo, [arch])``), then assembles it with BN recalibrated on the KD batches (phase
    ``"assembling"``; see ``blockzoo.export``). With ``spec_file``, the spec is also written
    as JSON beside the weights (``path`` with suffix ``.json``). Readers of ``path`` see the
    old file or the whole new one.

    Returns ``{"arch_id", "sha256", "bytes", "spec"}`` (sha256 and bytes of the written file).
    """
    from .export import export_architecture

    path = Path(path)
    _start(progress, "distilling", f"distilling the blocks of {arch.id} if missing")
    zoo.ensure_blocks([arch], progress=in_phase(progress, "distilling"), should_stop=should_stop)
    if on_distilled is not None:
        on_distilled(zoo, [arch])
    check_stop(should_stop)
    _start(progress, "assembling", f"assembling {arch.id}")
    data, spec = export_architecture(zoo, arch)
    write_atomic(path, data)
    if spec_file:
        write_atomic(path.with_suffix(".json"), json.dumps(spec, indent=2, default=str))
    if progress is not None:
        progress("assembling", 1.0, f"wrote {path.name}")
    return {"arch_id": arch.id, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "spec": spec}


def _start(progress: Optional[PhaseProgressFn], phase: str, message: str) -> None:
    if progress is not None:
        progress(phase, 0.0, message)


def _publish(run: ScoreRun, values: ScoreValues, on_values: Optional[ValuesFn]) -> None:
    run.values.update(values)
    if on_values is not None:
        on_values(values)
