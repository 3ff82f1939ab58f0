"""A validation report: how well every signal ranks the trained architectures, and what the
sample can and cannot show.

Targets are seed means over the architectures trained with every seed: test accuracy (primary)
and test NLL. Correlations against NLL are taken against −NLL, so that for both targets a
higher ρ means "ranks like training". Signals are oriented the same way: a signal where lower is
better (``kd_loss``) is negated before ranking.

The verdict is generated from the intervals and never says more than they allow: a signal
"ranks better than" another only when the paired bootstrap interval of their difference
excludes 0; otherwise the two "cannot be told apart at this sample size".

No torch.
"""

from __future__ import annotations

import math
from typing import Any, Collection, Mapping, Optional, Sequence

import numpy as np

from ..signals import LABELS, LOWER_IS_BETTER
from .statistics import N_BOOT, correlate, paired_difference, project_ceiling, seed_reliability

TARGETS = ("accuracy", "nll")
# The signals' names in prose (blockzoo.signals), plus the zero-cost name of MACs.
SIGNAL_LABELS = {**LABELS, "flops": "MACs"}


def clean(value: Optional[float], digits: int = 4) -> Optional[float]:
    """A finite float rounded for a report, or None (JSON has no NaN)."""
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def clean_interval(ci: Optional[Sequence[float]], digits: int = 4) -> Optional[list[float]]:
    return None if ci is None else [round(float(v), digits) for v in ci]


def label(name: str, labels: Mapping[str, str] = SIGNAL_LABELS) -> str:
    return labels.get(name, name)


def seed_means(results: Sequence[Mapping[str, Any]], seeds: Sequence[int], field: str) -> dict[str, float]:
    """Per architecture, the mean of ``field`` over ``seeds``; only architectures with every seed."""
    by_arch: dict[str, dict[int, float]] = {}
    for r in results:
        if r.get(field) is not None and r["seed"] in seeds:
            by_arch.setdefault(r["arch"], {})[r["seed"]] = float(r[field])
    return {a: float(np.mean([v[s] for s in seeds])) for a, v in by_arch.items() if all(s in v for s in seeds)}


def _aligned(values: Mapping[str, Optional[float]], target: Mapping[str, float],
             other: Optional[Mapping[str, Optional[float]]] = None) -> list[str]:
    def ok(v: Optional[float]) -> bool:
        return v is not None and math.isfinite(v)

    return [a for a in target if ok(values.get(a)) and (other is None or ok(other.get(a)))]


def _interval_summary(stats: Mapping[str, Any]) -> dict[str, Any]:
    return {"spearman": clean(stats["spearman"]), "spearman_ci": clean_interval(stats["spearman_ci"]),
            "kendall": clean(stats["kendall"]), "kendall_ci": clean_interval(stats["kendall_ci"]), "n": stats["n"]}


def validation_report(results: Sequence[Mapping[str, Any]], signals: Mapping[str, Mapping[str, Optional[float]]], *,
                      seeds: Sequence[int], primary: str = "proxy_accuracy",
                      lower_is_better: Collection[str] = LOWER_IS_BETTER,
                      labels: Mapping[str, str] = SIGNAL_LABELS, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """The report of one validation.

    ``results``: one record per finished training (``arch``, ``seed``, ``test_accuracy`` and,
    when measured, ``test_nll``). ``signals``: per signal name, its value per architecture id
    (as computed: the orientation is applied here). ``primary``: the signal every other one is
    compared with, pairwise.
    """
    if primary not in signals:
        raise ValueError(f"primary signal {primary!r} is not among the signals {sorted(signals)}")
    seeds = list(seeds)
    accuracy = seed_means(results, seeds, "test_accuracy")
    nll = seed_means(results, seeds, "test_nll")
    targets = {"accuracy": accuracy, "nll": {a: -v for a, v in nll.items()}}
    oriented = {name: {a: (None if v is None else (-v if name in lower_is_better else v)) for a, v in values.items()}
                for name, values in signals.items()}

    per_signal: dict[str, dict[str, Any]] = {}
    for name, values in oriented.items():
        per_signal[name] = {}
        for t, target in targets.items():
            ids = _aligned(values, target)
            stats = correlate(np.array([values[a] for a in ids]), np.array([target[a] for a in ids]), n_boot, seed)
            per_signal[name][t] = _interval_summary(stats)

    paired: dict[str, dict[str, Any]] = {}
    for name, values in oriented.items():
        if name == primary:
            continue
        paired[name] = {}
        for t, target in targets.items():
            ids = _aligned(oriented[primary], target, values)
            stats = paired_difference(np.array([oriented[primary][a] for a in ids]), np.array([values[a] for a in ids]),
                                      np.array([target[a] for a in ids]), n_boot, seed)
            paired[name][t] = _interval_summary(stats)

    report = {
        "seeds": seeds, "primary": primary, "n_archs": len(accuracy),
        "target_means": {"accuracy": accuracy, "nll": nll},
        "signals": per_signal, "paired": paired,
        "ceiling": seed_ceiling(results, seeds, n_boot=n_boot, seed=seed),
    }
    report["verdict"] = verdict(report, labels=labels)
    return report


def seed_ceiling(results: Sequence[Mapping[str, Any]], seeds: Sequence[int], *, n_boot: int = N_BOOT,
                 seed: int = 0) -> Optional[dict[str, Any]]:
    """How reproducible the ground truth itself is: ρ between two single seeds (the first two),
    per target, its Spearman–Brown projection to the mean of all ``seeds``, and the single-seed
    reliability of accuracy. None with fewer than two seeds."""
    if len(seeds) < 2:
        return None
    s0, s1 = seeds[0], seeds[1]
    out: dict[str, Any] = {"seeds": [s0, s1], "projected_to_seeds": len(seeds)}
    for t, field, sign in (("accuracy", "test_accuracy", 1.0), ("nll", "test_nll", -1.0)):
        a, b = seed_means(results, [s0], field), seed_means(results, [s1], field)
        ids = [x for x in a if x in b]
        single = correlate(np.array([sign * a[x] for x in ids]), np.array([sign * b[x] for x in ids]), n_boot, seed)
        projected = project_ceiling(single, len(seeds))
        out[t] = {"single_seed": _interval_summary(single),
                  "projected": {"spearman": clean(projected["spearman"]),
                                "spearman_ci": clean_interval(projected["spearman_ci"])}}
        if t == "accuracy":
            out["accuracy_noise"] = {k: clean(v) for k, v in seed_reliability([a[x] for x in ids],
                                                                             [b[x] for x in ids]).items()}
    return out


def _fmt(stats: Mapping[str, Any]) -> str:
    rho, ci = stats.get("spearman"), stats.get("spearman_ci")
    if rho is None:
        return "undefined"
    return f"{rho:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else " (no interval: too few architectures)")


def _fmt_difference(stats: Mapping[str, Any]) -> str:
    d, ci = stats.get("spearman"), stats.get("spearman_ci")
    if d is None:
        return "Δρ undefined"
    return f"Δρ = {d:+.2f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else ", no interval")


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def compare(paired: Mapping[str, Any]) -> str:
    """"better", "worse" or "undecided" from a paired difference's interval."""
    ci = paired.get("spearman_ci")
    if ci is None:
        return "undecided"
    if ci[0] > 0:
        return "better"
    if ci[1] < 0:
        return "worse"
    return "undecided"


def verdict_sentences(primary_label: str, own: Mapping[str, Any], paired: Mapping[str, Mapping[str, Any]], *,
                      target_label: str, labels: Mapping[str, str] = SIGNAL_LABELS) -> list[str]:
    """What one primary signal's correlation and its paired differences with every other signal
    allow saying about ranking ``target_label``."""
    ci = own.get("spearman_ci")
    n = own.get("n", 0)
    head = f"Over {n} architectures, {primary_label} ranks {target_label} with Spearman ρ = {_fmt(own)}"
    if ci is None:
        sentences = [head + "; that is too few architectures to tell it from chance."]
    elif ci[0] > 0:
        sentences = [head + ", better than chance."]
    elif ci[1] < 0:
        sentences = [head + ": in reverse order, worse than chance."]
    else:
        sentences = [head + "; the interval covers 0, so this sample cannot tell it from chance."]
    groups: dict[str, list[str]] = {"better": [], "worse": [], "undecided": []}
    for name, stats in paired.items():
        groups[compare(stats)].append(f"{label(name, labels)} ({_fmt_difference(stats)})")
    if groups["better"]:
        sentences.append(f"It ranks better than {_join(groups['better'])}: the paired bootstrap interval of the "
                         "difference in ρ (Δρ) excludes 0.")
    if groups["worse"]:
        sentences.append(f"{_join(groups['worse'])} rank{'s' if len(groups['worse']) == 1 else ''} better than it "
                         "(paired interval below 0).")
    if groups["undecided"]:
        why = ("paired intervals cover 0" if all(s.get("spearman_ci") for s in paired.values())
               else "paired intervals cover 0 or, with too few architectures, were not computed")
        sentences.append(f"It cannot be told apart from {_join(groups['undecided'])} at this sample size ({why}).")
    return sentences


def verdict(report: Mapping[str, Any], labels: Mapping[str, str] = SIGNAL_LABELS) -> str:
    """One paragraph: the primary signal against seed-mean accuracy, the paired comparisons, the
    seed-to-seed ceiling, and the NLL target in one line."""
    primary = report["primary"]
    acc_paired = {name: d["accuracy"] for name, d in report["paired"].items()}
    seeds = report["seeds"]
    target = "seed-mean test accuracy" if len(seeds) > 1 else "test accuracy"
    sentences = verdict_sentences(label(primary, labels), report["signals"][primary]["accuracy"], acc_paired,
                                  target_label=target, labels=labels)
    ceiling = report.get("ceiling")
    if ceiling is not None:
        single, projected = ceiling["accuracy"]["single_seed"], ceiling["accuracy"]["projected"]
        sentences.append(
            f"Training itself is noisy: two seeds agree at ρ = {_fmt(single)}; two independent means of "
            f"{ceiling['projected_to_seeds']} seeds would agree at about {_fmt(projected)} (Spearman–Brown), "
            "and that noise limits every signal's ρ against the seed mean.")
    nll = report["signals"][primary]["nll"]
    if nll.get("n"):
        sentences.append(f"Against seed-mean test NLL (lower is better) its ρ is {_fmt(nll)}.")
    return " ".join(sentences)
