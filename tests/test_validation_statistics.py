"""Validation statistics on synthetic data with a known answer, and the verdict they allow."""

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from blockzoo.validation.report import validation_report
from blockzoo.validation.statistics import (
    correlate, noise_decomposition, paired_difference, project_ceiling, rank_correlation, seed_projection,
    seed_reliability, spearman_brown,
)

N_BOOT = 400  # enough resamples for a stable 95 % interval, few enough to keep the file fast


def test_rank_correlation_equals_scipy_with_and_without_ties():
    rng = np.random.default_rng(0)
    for n in (5, 12, 40):
        x = rng.normal(size=n)
        y = x + rng.normal(size=n)
        ties_x, ties_y = np.round(x), np.round(y * 2) / 2
        for a, b in ((x, y), (ties_x, y), (ties_x, ties_y)):
            rho, tau = rank_correlation(a, b)
            assert rho == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
            assert tau == pytest.approx(kendalltau(a, b).statistic, abs=1e-12)


def test_undefined_correlations_are_nan_and_get_no_interval():
    assert all(np.isnan(rank_correlation(np.array([1.0, 2.0]), np.array([2.0, 1.0]))))
    stats = correlate(np.ones(10), np.arange(10.0), n_boot=N_BOOT)
    assert np.isnan(stats["spearman"]) and stats["spearman_ci"] is None
    assert correlate(np.arange(3.0), np.arange(3.0), n_boot=N_BOOT)["spearman_ci"] is None  # too few to resample


def test_perfect_ranking_has_rho_one_and_an_interval_at_one():
    x = np.arange(25.0)
    stats = correlate(x, 3 * x + 7, n_boot=N_BOOT)
    assert stats["spearman"] == pytest.approx(1.0) and stats["kendall"] == pytest.approx(1.0)
    assert stats["spearman_ci"] == pytest.approx([1.0, 1.0]) and stats["kendall_ci"] == pytest.approx([1.0, 1.0])


def test_reversed_ranking_has_rho_minus_one():
    x = np.arange(25.0)
    stats = correlate(x, -x ** 3, n_boot=N_BOOT)
    assert stats["spearman"] == pytest.approx(-1.0) and stats["kendall"] == pytest.approx(-1.0)
    assert stats["spearman_ci"] == pytest.approx([-1.0, -1.0])


def test_pure_noise_interval_covers_zero():
    rng = np.random.default_rng(3)
    stats = correlate(rng.normal(size=30), rng.normal(size=30), n_boot=N_BOOT)
    low, high = stats["spearman_ci"]
    assert low < 0 < high
    assert stats["spearman"] == pytest.approx(spearmanr(*np.random.default_rng(3).normal(size=(2, 30))).statistic)


def test_paired_difference_of_a_strong_and_a_weak_signal_excludes_zero():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=40)
    strong, weak = truth + 0.1 * rng.normal(size=40), truth + 2.0 * rng.normal(size=40)
    d = paired_difference(strong, weak, truth, n_boot=N_BOOT)
    assert d["spearman"] == pytest.approx(spearmanr(strong, truth).statistic - spearmanr(weak, truth).statistic)
    assert d["kendall"] == pytest.approx(kendalltau(strong, truth).statistic - kendalltau(weak, truth).statistic)
    assert d["spearman_ci"][0] > 0 and d["kendall_ci"][0] > 0
    swapped = paired_difference(weak, strong, truth, n_boot=N_BOOT)
    assert swapped["spearman_ci"][1] < 0


def test_paired_difference_of_a_signal_with_itself_is_exactly_zero():
    rng = np.random.default_rng(2)
    x, t = rng.normal(size=20), rng.normal(size=20)
    assert paired_difference(x, x.copy(), t, n_boot=N_BOOT)["spearman_ci"] == [0.0, 0.0]


def test_paired_interval_is_narrower_than_unpaired_when_the_signals_share_noise():
    # Two signals that agree closely with each other: resampling architectures moves both of
    # their correlations together, so the paired interval of the difference is much narrower
    # than either correlation's own interval.
    rng = np.random.default_rng(4)
    truth = rng.normal(size=30)
    a = truth + rng.normal(size=30)
    b = a + 0.05 * rng.normal(size=30)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    paired = paired_difference(a, b, truth, n_boot=N_BOOT)["spearman_ci"]
    assert width(paired) < 0.5 * width(correlate(a, truth, n_boot=N_BOOT)["spearman_ci"])
    assert paired[0] <= 0 <= paired[1]


def test_spearman_brown_and_the_ceiling_projection():
    assert spearman_brown(0.5, 2) == pytest.approx(2 / 3)
    assert spearman_brown(0.6, 1) == pytest.approx(0.6)
    projected = project_ceiling({"spearman": 0.5, "spearman_ci": [-0.3, 0.8]}, 2)
    assert projected["spearman"] == pytest.approx(2 / 3)
    # No reproducible signal (ρ ≤ 0) projects to 0, never below.
    assert projected["spearman_ci"] == pytest.approx([0.0, 1.6 / 1.8])
    out = seed_projection(0.6, 600.0)
    assert out["reliability_of_m_seed_mean"]["2"] == pytest.approx(0.75)
    # 0.9 = mR / (1 + (m − 1)R) at R = 0.6 needs m = 6.
    assert out["seeds_per_mean_for_0.9"] == 6 and out["sc_trainings_for_ceiling_and_40"] == 10 * 2 * 6 + 30 * 6
    assert out["sc_cpu_hours_at_measured_speed"] == pytest.approx(300 * 600 / 3600)
    assert seed_projection(float("nan"), None) == {}


def test_seed_reliability_separates_signal_from_seed_noise():
    rng = np.random.default_rng(5)
    arch = rng.normal(size=400)
    first, second = arch + 0.5 * rng.normal(size=400), arch + 0.5 * rng.normal(size=400)
    out = seed_reliability(first, second)
    assert out["noise_sd"] == pytest.approx(0.5, rel=0.1)
    assert out["reliability"] == pytest.approx(1 / 1.25, abs=0.05)  # signal variance 1, noise 0.25
    # Every architecture's two runs average to the same value: all of the spread is seed noise.
    noise = rng.normal(size=50)
    assert np.isnan(seed_reliability(0.8 + noise, 0.8 - noise)["reliability"])


def test_noise_decomposition_on_runs_that_flip_independent_images():
    rng = np.random.default_rng(6)
    n_images, pairs = 2000, []
    for arch in range(8):
        p = 0.8 + 0.01 * arch
        c0, c1 = rng.random(n_images) < p, rng.random(n_images) < p
        pairs.append({"correct": (c0, c1), "accuracy": (c0.mean(), c1.mean()), "nll": (1 - p, 1 - p + 0.01),
                      "p_true": (p, p)})
    out = noise_decomposition(pairs)
    assert out["n_archs"] == 8
    # Independent flips at equal expected accuracy: the finite test set explains all the noise.
    assert 0.3 < out["test_set_share_of_variance"] < 3
    assert out["nll_seed_spearman"] == pytest.approx(1.0)
    assert noise_decomposition(pairs[:1]) == {"n_archs": 1}


def _results(acc: dict[str, tuple[float, ...]], nll_scale: float = 1.0) -> list[dict]:
    return [{"arch": a, "seed": s, "test_accuracy": v, "test_nll": nll_scale * (1 - v)}
            for a, values in acc.items() for s, v in enumerate(values)]


def test_report_on_a_signal_that_ranks_perfectly_and_one_that_is_noise():
    rng = np.random.default_rng(7)
    ids = [f"a{i}" for i in range(40)]
    quality = dict(zip(ids, np.linspace(0.80, 0.90, 40)))
    results = _results({a: (q + 0.001 * rng.normal(), q + 0.001 * rng.normal()) for a, q in quality.items()})
    signals = {"proxy_accuracy": dict(quality), "flops": {a: float(rng.normal()) for a in ids},
               "kd_loss": {a: -q for a, q in quality.items()}}
    report = validation_report(results, signals, seeds=[0, 1], n_boot=N_BOOT)
    mean_acc = [np.mean([r["test_accuracy"] for r in results if r["arch"] == a]) for a in ids]
    expected = spearmanr([quality[a] for a in ids], mean_acc).statistic
    assert report["signals"]["proxy_accuracy"]["accuracy"]["spearman"] == pytest.approx(expected, abs=1e-4)
    # kd_loss is lower-is-better: oriented, it ranks exactly like the proxy.
    signals_rho = {name: s["accuracy"]["spearman"] for name, s in report["signals"].items()}
    assert signals_rho["kd_loss"] == signals_rho["proxy_accuracy"]
    assert report["signals"]["proxy_accuracy"]["nll"]["spearman"] == pytest.approx(expected, abs=1e-4)
    assert report["paired"]["flops"]["accuracy"]["spearman_ci"][0] > 0
    assert report["ceiling"]["accuracy"]["single_seed"]["n"] == 40
    text = report["verdict"]
    assert "ranks better than MACs" in text and "better than chance" in text
    assert "cannot be told apart from KD loss" in text


def test_report_on_pure_noise_cannot_tell_the_signals_apart():
    rng = np.random.default_rng(8)
    ids = [f"a{i}" for i in range(30)]
    results = _results({a: (0.85 + 0.01 * rng.normal(), 0.85 + 0.01 * rng.normal()) for a in ids})
    signals = {"proxy_accuracy": {a: float(rng.normal()) for a in ids}, "flops": {a: float(rng.normal()) for a in ids}}
    report = validation_report(results, signals, seeds=[0, 1], n_boot=N_BOOT)
    low, high = report["signals"]["proxy_accuracy"]["accuracy"]["spearman_ci"]
    assert low < 0 < high
    low, high = report["paired"]["flops"]["accuracy"]["spearman_ci"]
    assert low < 0 < high
    text = report["verdict"]
    assert "cannot be told apart from MACs (" in text and "at this sample size" in text
    assert "cannot tell it from chance" in text and "ranks better than" not in text


def test_report_says_when_another_signal_ranks_better():
    rng = np.random.default_rng(9)
    ids = [f"a{i}" for i in range(40)]
    quality = dict(zip(ids, rng.normal(size=40)))
    results = _results({a: (q,) for a, q in quality.items()})
    signals = {"proxy_accuracy": {a: q + 3 * rng.normal() for a, q in quality.items()}, "params": dict(quality)}
    report = validation_report(results, signals, seeds=[0], n_boot=N_BOOT)
    assert report["ceiling"] is None
    assert "Params (" in report["verdict"] and "ranks better than it" in report["verdict"]


def test_report_needs_every_seed_and_a_known_primary():
    results = _results({"a": (0.8, 0.81), "b": (0.7,)})
    report = validation_report(results, {"proxy_accuracy": {"a": 1.0, "b": 0.0}}, seeds=[0, 1], n_boot=N_BOOT)
    assert report["n_archs"] == 1 and report["target_means"]["accuracy"] == {"a": pytest.approx(0.805)}
    with pytest.raises(ValueError, match="primary signal"):
        validation_report(results, {"flops": {}}, seeds=[0])
