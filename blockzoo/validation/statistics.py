"""How well a signal ranks architectures, and how much of that a sample can show.

Everything here works on plain arrays indexed by architecture: rank correlations with
percentile-bootstrap intervals (architectures resampled with replacement), the **paired**
bootstrap of the difference between two signals' correlations with one target (architectures
resampled jointly, so the noise both signals share cancels), and the seed-noise measures of the
ground truth itself (single-seed reliability, Spearman–Brown projection to seed means, the
finite-test-set share of the seed noise).

No torch: a report can be computed wherever the per-training results are.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
from scipy.stats import rankdata

N_BOOT = 1000
MIN_BOOT_FOR_INTERVAL = 50  # fewer finite resamples than this: no interval is claimed
# Below 8 architectures a bootstrap percentile interval of a rank correlation is far too narrow:
# 4 perfectly reversed points give [-1, -1], while an exact permutation test of that ordering
# gives p = 1/12. No interval is claimed there, so no verdict reads more than the data allow.
MIN_ARCHS_FOR_BOOTSTRAP = 8
_PAIR_ELEMENTS = 2_000_000  # per chunk of bootstrap resamples


def rank_correlation(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman ρ and Kendall τ-b (ties handled as scipy does); NaN for fewer than 3 points or a
    constant input. Cheap enough to call once per bootstrap resample."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan"), float("nan")
    rho = float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    iu = np.triu_indices(len(x), 1)
    dx, dy = dx[iu], dy[iu]
    denom = math.sqrt(float(np.count_nonzero(dx)) * float(np.count_nonzero(dy)))
    tau = float((dx * dy).sum() / denom) if denom else float("nan")
    return rho, tau


def percentile_interval(values: Sequence[float]) -> Optional[list[float]]:
    """The 95 % percentile interval of bootstrap values, or None when too few are finite."""
    if len(values) < MIN_BOOT_FOR_INTERVAL:
        return None
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def correlate(x: np.ndarray, y: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """ρ and τ with percentile bootstrap 95 % intervals (architectures resampled with replacement)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    rho, tau = rank_correlation(x, y)
    boot_rho: list[float] = []
    boot_tau: list[float] = []
    if len(x) >= MIN_ARCHS_FOR_BOOTSTRAP:
        rho_b, tau_b = _bootstrap(x, y, n_boot, np.random.default_rng(seed))
        finite = np.isfinite(rho_b)
        boot_rho, boot_tau = list(rho_b[finite]), list(tau_b[finite])
    return {"spearman": rho, "kendall": tau, "spearman_ci": percentile_interval(boot_rho),
            "kendall_ci": percentile_interval(boot_tau), "n": int(len(x))}


def _rank_correlation_rows(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`rank_correlation` of every row pair of two (resamples × architectures) arrays, with
    the same arithmetic (so the same floats): ranks and τ vectorised, ρ by ``np.corrcoef`` per row."""
    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)
    constant = (x == x[:, :1]).all(axis=1) | (y == y[:, :1]).all(axis=1)
    rho = np.array([np.nan if c else np.corrcoef(a, b)[0, 1] for a, b, c in zip(rx, ry, constant)])
    iu = np.triu_indices(x.shape[1], 1)
    dx = np.sign(x[:, :, None] - x[:, None, :])[:, iu[0], iu[1]]
    dy = np.sign(y[:, :, None] - y[:, None, :])[:, iu[0], iu[1]]
    denom = np.sqrt(np.count_nonzero(dx, axis=1).astype(float) * np.count_nonzero(dy, axis=1).astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(denom > 0, (dx * dy).sum(axis=1) / denom, np.nan)
    tau[constant] = np.nan
    return rho, tau


def _bootstrap(x: np.ndarray, y: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """ρ and τ of ``n_boot`` resamples of the architectures (with replacement), NaN where undefined."""
    idx = rng.integers(0, len(x), (n_boot, len(x)))
    # τ compares every pair of architectures: bound the (resamples × n × n) arrays it needs.
    chunk = max(1, _PAIR_ELEMENTS // max(1, len(x) ** 2))
    parts = [_rank_correlation_rows(x[idx[i:i + chunk]], y[idx[i:i + chunk]]) for i in range(0, n_boot, chunk)]
    if not parts:
        return np.empty(0), np.empty(0)
    return np.concatenate([r for r, _ in parts]), np.concatenate([t for _, t in parts])


def paired_difference(a: np.ndarray, b: np.ndarray, target: np.ndarray, n_boot: int = N_BOOT,
                      seed: int = 0) -> dict[str, Any]:
    """ρ(a, target) − ρ(b, target) (and the same for τ) with a paired bootstrap 95 % interval.

    Each resample draws architectures with replacement and recomputes both correlations on the
    same draw: what the two signals share (the target's noise, which architectures happen to be
    in the sample) moves both together and drops out of the difference. An interval that
    excludes 0 says the sample can tell the two signals apart; one that covers 0 says it cannot.
    """
    a, b, target = (np.asarray(v, dtype=float) for v in (a, b, target))
    if not len(a) == len(b) == len(target):
        raise ValueError(f"paired signals need one value per architecture each, got {len(a)}, {len(b)}, {len(target)}")
    rho_a, tau_a = rank_correlation(a, target)
    rho_b, tau_b = rank_correlation(b, target)
    boot_rho: list[float] = []
    boot_tau: list[float] = []
    if len(a) >= MIN_ARCHS_FOR_BOOTSTRAP:
        ra, ta = _bootstrap(a, target, n_boot, np.random.default_rng(seed))
        rb, tb = _bootstrap(b, target, n_boot, np.random.default_rng(seed))  # the same resamples
        finite = np.isfinite(ra) & np.isfinite(rb)
        boot_rho, boot_tau = list(ra[finite] - rb[finite]), list(ta[finite] - tb[finite])
    return {"spearman": rho_a - rho_b, "kendall": tau_a - tau_b, "spearman_ci": percentile_interval(boot_rho),
            "kendall_ci": percentile_interval(boot_tau), "spearman_a": rho_a, "spearman_b": rho_b,
            "n": int(len(a))}


def spearman_brown(reliability: float, m: float) -> float:
    """Reliability of the mean of ``m`` independent measurements, each of reliability
    ``reliability``: mR / (1 + (m − 1)R). Also the expected correlation between two independent
    such means, which is why it projects a single-seed ceiling to seed means."""
    return m * reliability / (1 + (m - 1) * reliability)


def seed_reliability(first: Sequence[float], second: Sequence[float]) -> dict[str, float]:
    """Split the spread of one measurement repeated with two seeds per architecture into seed
    noise and real differences between architectures.

    ``first[i]`` and ``second[i]`` are architecture i's results under two seeds. Returns the seed
    noise sd (from the paired differences), the sd of the architecture means, and the single-seed
    reliability: the share of one seed's variance that is signal (NaN when the spread is all noise).
    """
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    diffs = np.abs(first - second)
    means = 0.5 * (first + second)
    noise_sd = float(np.sqrt(np.mean(np.square(diffs)) / 2)) if len(diffs) else float("nan")
    spread_sd = float(np.std(means, ddof=1)) if len(means) > 1 else float("nan")
    signal_var = spread_sd ** 2 - noise_sd ** 2 / 2 if len(means) > 1 else float("nan")
    reliability = signal_var / (signal_var + noise_sd ** 2) if len(means) > 1 and signal_var > 0 else float("nan")
    return {"mean_abs_difference": float(np.mean(diffs)) if len(diffs) else float("nan"),
            "max_abs_difference": float(np.max(diffs)) if len(diffs) else float("nan"),
            "noise_sd": noise_sd, "arch_mean_sd": spread_sd, "reliability": reliability}


def seed_projection(reliability: float, seconds_per_training: Optional[float], *, ceiling_archs: int = 10,
                    total_archs: int = 40, target: float = 0.9) -> dict[str, Any]:
    """What averaging seeds buys, from the single-seed reliability R (Spearman–Brown; rank ρ tracks
    it closely for roughly normal data): the reliability of m-seed means, the seeds per mean that
    a ``target`` ceiling needs, and the SC trainings that implies (two disjoint seed groups on
    ``ceiling_archs`` architectures, one group on the rest of ``total_archs``)."""
    if not math.isfinite(reliability) or reliability <= 0:
        return {}
    by_m = {m: spearman_brown(reliability, m) for m in (1, 2, 3, 4, 6, 8)}
    # Seeds m with spearman_brown(R, m) >= target; the tolerance keeps an exact m from rounding up.
    needed = math.ceil(target * (1 - reliability) / ((1 - target) * reliability) - 1e-9) if reliability < target else 1
    trainings = ceiling_archs * 2 * needed + (total_archs - ceiling_archs) * needed
    out = {"reliability_of_m_seed_mean": {str(m): v for m, v in by_m.items()}, f"seeds_per_mean_for_{target:g}": needed,
           f"sc_trainings_for_ceiling_and_{total_archs}": trainings}
    if seconds_per_training:
        out["sc_cpu_hours_at_measured_speed"] = trainings * seconds_per_training / 3600
        out["cpu_seconds_per_training"] = seconds_per_training
    return out


def project_ceiling(single_seed: Mapping[str, Any], m: int) -> dict[str, Any]:
    """The seed-to-seed ρ of single seeds projected to means of ``m`` seeds (Spearman–Brown on ρ),
    with the single-seed bootstrap interval mapped through the same increasing function.

    A reliability cannot be negative: a single-seed ρ ≤ 0 means no reproducible signal, and
    averaging seeds does not create one, so it projects to 0."""
    rho, ci = single_seed.get("spearman"), single_seed.get("spearman_ci")
    if rho is None or not math.isfinite(rho) or m < 1:
        return {"m": m, "spearman": None, "spearman_ci": None}

    def project(r: float) -> float:
        return spearman_brown(max(r, 0.0), m)

    return {"m": m, "spearman": project(rho), "spearman_ci": None if ci is None else [project(ci[0]), project(ci[1])]}


def noise_decomposition(pairs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """How much of the seed-to-seed difference in test accuracy is the finite test set.

    Each pair describes one architecture trained with two seeds: ``correct`` (two boolean
    per-image vectors in test-set order), ``accuracy``, ``nll`` and ``p_true`` (two values each).
    For two runs the accuracy difference is the mean over the test images of
    (correct₀ − correct₁); if both runs had the same expected accuracy and their flips were
    independent across images, its sd would be sqrt(disagreement / n). Comparing that with the
    observed rms difference says whether more test images (or averaging runs) can help at all.
    Also the seed-to-seed ρ of two continuous measures (test NLL, mean p(true class)), which show
    how much of the noise is accuracy's 0/1 quantisation.
    """
    rows = []
    for pair in pairs:
        c0, c1 = pair["correct"]
        rows.append({"diff": float(c0.mean() - c1.mean()), "disagreement": float((c0 != c1).mean()), "n": len(c0),
                     "accuracy": pair["accuracy"], "nll": pair["nll"], "p_true": pair["p_true"]})
    out: dict[str, Any] = {"n_archs": len(rows)}
    if len(rows) < 2:
        return out
    rms_diff = float(np.sqrt(np.mean([r["diff"] ** 2 for r in rows])))
    expected = float(np.sqrt(np.mean([r["disagreement"] / r["n"] for r in rows])))

    def seed_rho(measure: str, sign: float = 1.0) -> float:
        return rank_correlation(np.array([sign * r[measure][0] for r in rows]),
                                np.array([sign * r[measure][1] for r in rows]))[0]

    out.update({
        "rms_seed_difference": rms_diff, "mean_disagreement": float(np.mean([r["disagreement"] for r in rows])),
        "test_set_sd_of_difference": expected,
        "test_set_share_of_variance": expected ** 2 / rms_diff ** 2 if rms_diff > 0 else None,
        "nll_seed_spearman": seed_rho("nll", -1.0),
        "p_true_seed_spearman": seed_rho("p_true"),
        "accuracy_seed_spearman": seed_rho("accuracy"),
    })
    return out
