"""bench.proxy_quality: the committed protocols' architectures and job order, and the report's
rendering (no training, no dataset)."""

import json
from pathlib import Path

from bench.proxy_quality.markdown import markdown
from bench.proxy_quality.protocols import PROTOCOLS
from bench.proxy_quality.report import table1_verdict
from bench.proxy_quality.workspace import Bench
from blockzoo.validation.design import uniform

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results"


def _bench(name: str) -> Bench:
    bench = object.__new__(Bench)  # the job list needs the protocol and its architectures only
    bench.p = PROTOCOLS[name]
    bench.space = bench.p.space_obj
    bench.archs = uniform(bench.space, bench.p.k, bench.p.arch_seed)
    return bench


def test_dev_architectures_are_the_committed_ones():
    committed = json.loads((RESULTS / "proxy_quality.dev.json").read_text())
    assert [a.id for a in _bench("dev").archs] == committed["archs"]


def test_cpu_protocol_trains_two_seeds_of_all_40_first_then_finetunes_then_more_seeds():
    bench = _bench("cpu")
    tiers = [(tier, job.init, job.seed) for tier, job in bench.tiered_jobs()]
    assert len({a.id for a in bench.archs}) == 40 and bench.space.reference not in bench.archs
    first = tiers[:80]
    assert {(init, seed) for _, init, seed in first} == {("SC", 0), ("SC", 1)}
    finetune = tiers[80:120]
    assert sorted({init for _, init, _ in finetune}) == ["KD", "PR"] and len(finetune) == 2 * 20
    later = tiers[120:]
    assert {(init, seed) for _, init, seed in later} == {("SC", 2), ("SC", 3)} and len(later) == 80
    assert [t for t, _, _ in tiers] == sorted(t for t, _, _ in tiers)
    # The ceiling is the single-seed ρ over all 40, projected to the two-seed mean.
    assert bench.p.ceiling_groups == ((0,), (1,)) and bench.p.ceiling_k == 40 and bench.p.sc_seeds == (0, 1)


def test_a_report_from_before_the_paired_intervals_still_renders():
    text = markdown(json.loads((RESULTS / "proxy_quality.dev.json").read_text()))
    assert text.startswith("# Proxy quality (dev protocol") and "## Table 1" in text


def test_table1_verdict_claims_only_what_the_paired_intervals_allow():
    def row(name, group, diff, ci):
        return {"name": name, "group": group, "label": name.upper(),
                "paired_blockzoo_minus_this": {"SC": {"difference": diff, "ci": ci, "n": 40}}}

    ours = {"name": "blockzoo", "spearman": {"SC": 0.6}, "spearman_ci": {"SC": [0.35, 0.78]}, "n": {"SC": 40}}
    rows = [row("flops", "baseline", 0.3, [0.05, 0.55]), row("synflow", "baseline", 0.02, [-0.2, 0.25]),
            row("tune_T10", "tuning", 0.5, [0.3, 0.7]), {**ours, "group": "ours", "label": "ours",
                                                         "paired_blockzoo_minus_this": None}]
    text = table1_verdict(rows, ours, (0, 1))
    assert "better than chance" in text
    assert "ranks better than FLOPS" in text and "cannot be told apart from SYNFLOW" in text
    assert "TUNE_T10" not in text  # recipe variants are not baselines
