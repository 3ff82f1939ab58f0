"""The signals that rank architectures without training them, and which way each one points.

A *signal* is a number per architecture that is meant to predict its trained accuracy:

* the zoo proxy's three values (``blockzoo.proxy.ProxyScore``): ``proxy_accuracy``,
  ``heldout_accuracy`` and ``kd_loss`` — the only one where a **lower** value predicts a better
  architecture;
* the zero-cost baselines of ``blockzoo.zerocost`` computed on the zoo's KD batches
  (``gradnorm``, ``snip``, ``fisher``, ``synflow``, ``naswot``, ``l2norm``);
* the analytic costs of ``blockzoo.cost_model``: ``macs`` and ``params`` (bigger networks are
  usually more accurate, so as rankers they point up).

This table is the one place the direction of a signal is known: a search maximises the oriented
value, a validation correlates it. Pure: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Signal:
    name: str
    source: str             # "proxy" | "zero-cost" | "cost": what computes it
    higher_is_better: bool  # as a predictor of trained accuracy
    label: str              # how reports and plots name it

    def oriented(self, value: Optional[float]) -> Optional[float]:
        """``value`` turned so that higher always predicts a better architecture (None stays None)."""
        if value is None:
            return None
        return value if self.higher_is_better else -value


_TABLE = (
    Signal("proxy_accuracy", "proxy", True, "the BlockZoo proxy"),
    Signal("heldout_accuracy", "proxy", True, "held-out proxy accuracy"),
    Signal("kd_loss", "proxy", False, "KD loss"),
    Signal("gradnorm", "zero-cost", True, "Gradnorm"),
    Signal("snip", "zero-cost", True, "Snip"),
    Signal("fisher", "zero-cost", True, "Fisher"),
    Signal("synflow", "zero-cost", True, "Synflow"),
    Signal("naswot", "zero-cost", True, "NASWOT"),
    Signal("l2norm", "zero-cost", True, "L2norm"),
    Signal("macs", "cost", True, "MACs"),
    Signal("params", "cost", True, "Params"),
)

SIGNALS: dict[str, Signal] = {s.name: s for s in _TABLE}
SIGNAL_NAMES: tuple[str, ...] = tuple(SIGNALS)
PROXY_SIGNALS: tuple[str, ...] = tuple(s.name for s in _TABLE if s.source == "proxy")
ZERO_COST_SIGNALS: tuple[str, ...] = tuple(s.name for s in _TABLE if s.source == "zero-cost")
COST_SIGNALS: tuple[str, ...] = tuple(s.name for s in _TABLE if s.source == "cost")
LOWER_IS_BETTER: frozenset[str] = frozenset(s.name for s in _TABLE if not s.higher_is_better)
LABELS: dict[str, str] = {s.name: s.label for s in _TABLE}


def get_signal(name: str) -> Signal:
    """The signal ``name``; ValueError naming the known ones otherwise."""
    try:
        return SIGNALS[name]
    except KeyError:
        raise ValueError(f"unknown signal {name!r}; known: {', '.join(SIGNAL_NAMES)}") from None
