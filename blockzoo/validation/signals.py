"""Every signal of a validation's architectures (``blockzoo.signals``), measured on its zoo.

The proxy's values and the zero-cost baselines come from :func:`blockzoo.pipeline.score_on_zoo`
(the same computation as ``blockzoo score`` and the service's score rows, so values a caller
already holds are passed as ``known`` and not computed again); MACs and params from the
analytic cost model. Importing this module does not import torch.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

from ..cost_model import cost
from ..pipeline import DistilledFn, ScoreKey, ValuesFn, ZooSource, score_on_zoo
from ..progress import PhaseProgressFn, StopFn
from ..signals import COST_SIGNALS, PROXY_SIGNALS, SIGNAL_NAMES, ZERO_COST_SIGNALS
from ..space import Architecture, SearchSpace

# Per signal name, its value per architecture id (None: not finite, e.g. a synflow overflow).
SignalValues = dict[str, dict[str, Optional[float]]]


def measure_signals(zoo: ZooSource, space: SearchSpace, archs: Sequence[Architecture], in_channels: int,
                    num_classes: int, *, known: Optional[Mapping[ScoreKey, Optional[float]]] = None,
                    progress: Optional[PhaseProgressFn] = None, should_stop: Optional[StopFn] = None,
                    on_distilled: Optional[DistilledFn] = None, on_values: Optional[ValuesFn] = None) -> SignalValues:
    """Every signal of :data:`blockzoo.signals.SIGNAL_NAMES` for ``archs``.

    ``zoo`` (or a function opening it) is opened only if ``known`` lacks a value; the phases,
    ``on_distilled`` and ``on_values`` are :func:`~blockzoo.pipeline.score_on_zoo`'s.
    """
    values: dict[ScoreKey, Optional[float]] = dict(known or {})
    run = score_on_zoo(zoo, archs, ZERO_COST_SIGNALS, known=values, progress=progress, should_stop=should_stop,
                       on_distilled=on_distilled, on_values=on_values)
    values.update(run.values)
    out: SignalValues = {name: {a.id: values.get((a.id, name)) for a in archs}
                         for name in (*PROXY_SIGNALS, *ZERO_COST_SIGNALS)}
    costs = {a.id: cost(space, a, in_channels=in_channels, num_classes=num_classes) for a in archs}
    for name in COST_SIGNALS:
        out[name] = {a: float(getattr(c, name)) for a, c in costs.items()}
    return {name: out[name] for name in SIGNAL_NAMES}
