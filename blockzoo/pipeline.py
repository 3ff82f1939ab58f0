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
# The zero-cost baselines a score may add (blockzoo.zerocost.METRICS less its analytic "flops"
# and "params": MACs and params are reported with every score, from blockzoo.cost_model).
ZERO_COST_BASELINES: tuple[str, ...] = ("gradnorm", "snip", "fisher", "synflow", "naswot", "l2norm")
ANALYTIC_METRICS: tuple[str, ...] = ("flops", "params", "macs")
SCORE_PHASES: tuple[str, ...] = ("distilling", "scoring", "zero-cost")
EXPORT_PHASES: tuple[str, ...] = ("distilling", "assembling")
# safetensors: weights for blockzoo.build_network; pt2 / onnx: whole models (blockzoo.deploy).
EXPORT_FORMATS: tuple[str, ...] = ("safetensors", "pt2", "onnx")

ScoreKey = tuple[str, str]                      # (arch_id, metric)
ScoreValues = dict[ScoreKey, Optional[float]]   # None: the metric was not finite
ZooSource = Union["BlockZoo", Callable[[], "BlockZoo"]]
DistilledFn = Callable[["BlockZoo", Sequence[Architecture]], None]  # the zoo, whose blocks they are
ValuesFn = Callable[[ScoreValues], None]


def zero_cost_metrics(names: Iterable[str]) -> list[str]:
    """The zero-cost baselines among ``names``, in order, without repeats or proxy metrics.

    Naming a proxy metric is accepted and changes nothing (they are always computed). Raises
    ``ValueError`` naming the unknown ones; the same names as the service's score requests.
    """
    baselines = [n for n in dict.fromkeys(names) if n not in PROXY_METRICS]
    analytic = [n for n in baselines if n in ANALYTIC_METRICS]
    if analytic:
        raise ValueError(f"{', '.join(analytic)}: MACs and params are reported with every score, not "
                         f"requested as metrics; known metrics: {', '.join(PROXY_METRICS + ZERO_COST_BASELINES)}")
    unknown = [n for n in baselines if n not in ZERO_COST_BASELINES]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: "
                         f"{', '.join(PROXY_METRICS + ZERO_COST_BASELINES)}")
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

        _start(progress, "distilling", f"the blocks of {len(need_proxy)} architecture(s)")
        run.blocks_distilled = opened.ensure_blocks(need_proxy, progress=in_phase(progress, "distilling"),
                                                    should_stop=should_stop)
        if on_distilled is not None:
            on_distilled(opened, need_proxy)
        check_stop(should_stop)
        _start(progress, "scoring", f"0/{len(need_proxy)} architectures")
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
                   on_distilled: Optional[DistilledFn] = None, file_format: str = "safetensors",
                   image_shape: Optional[Sequence[int]] = None) -> dict[str, Any]:
    """Write ``arch`` assembled from ``zoo`` to ``path`` as ``file_format``, atomically.

    Formats (:data:`EXPORT_FORMATS`): ``safetensors``, the weights for
    ``blockzoo.build_network`` (``blockzoo.export``); ``pt2`` (``torch.export``) and ``onnx``,
    whole models from uint8 images of ``image_shape`` (H, W, C; default: the space's input
    size) to logits, preprocessing inside, loadable without BlockZoo and checked against the
    torch model before they are written (``blockzoo.deploy``).

    Distils the blocks ``arch`` needs and the zoo lacks first (phase ``"distilling"``; then
    ``on_distilled(zoo, [arch])``), then assembles it with BN recalibrated on the KD batches (phase
    ``"assembling"``). With ``spec_file``, the spec is also written as JSON beside the file
    (:func:`spec_path`). Readers of ``path`` see the old file or the whole new one.

    Returns ``{"arch_id", "format", "sha256", "bytes", "spec"}`` (sha256 and bytes of the
    written file), and ``"check"`` (the numbers of the check) for ``pt2`` and ``onnx``.
    """
    from .export import export_architecture

    if file_format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {file_format!r}; known: {', '.join(EXPORT_FORMATS)}")
    path = Path(path)
    _start(progress, "distilling", f"the blocks of {arch.id} if missing")
    zoo.ensure_blocks([arch], progress=in_phase(progress, "distilling"), should_stop=should_stop)
    if on_distilled is not None:
        on_distilled(zoo, [arch])
    check_stop(should_stop)
    _start(progress, "assembling", arch.id)
    extra: dict[str, Any] = {}
    if file_format == "safetensors":
        data, spec = export_architecture(zoo, arch)
    else:
        from .deploy import export_deployable

        data, spec, extra["check"] = export_deployable(zoo, arch, file_format, image_shape,
                                                       progress=in_phase(progress, "assembling"))
    write_atomic(path, data)
    if spec_file:
        write_atomic(spec_path(path, file_format), json.dumps(spec, indent=2, default=str))
    if progress is not None:
        progress("assembling", 1.0, f"wrote {path.name}")
    return {"arch_id": arch.id, "format": file_format, "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data), "spec": spec, **extra}


def spec_path(path: Path | str, file_format: str = "safetensors") -> Path:
    """The JSON spec beside an exported file: ``x.json`` for ``x.safetensors``, ``x.onnx.json`` for
    ``x.onnx`` (architecture ids hold dots, so the formats' specs must not share a name)."""
    path = Path(path)
    return path.with_suffix(".json") if file_format == "safetensors" else path.with_name(path.name + ".json")


def _start(progress: Optional[PhaseProgressFn], phase: str, message: str) -> None:
    if progress is not None:
        progress(phase, 0.0, message)


def _publish(run: ScoreRun, values: ScoreValues, on_values: Optional[ValuesFn]) -> None:
    run.values.update(values)
    if on_values is not None:
        on_values(values)
