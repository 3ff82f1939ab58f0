"""bench/finetune.py: architecture choice, paired statistics and the report (no training)."""

import pytest

from bench import finetune as bench
from blockzoo.space import get_space


def test_architectures_are_fixed_distinct_and_never_the_reference():
    space = get_space("mbv3-tiny")
    archs = bench.pick_architectures(space, 6, 0)
    assert [a.id for a in archs] == [a.id for a in bench.pick_architectures(space, 6, 0)]
    assert len({a.id for a in archs}) == 6 and space.reference.id not in {a.id for a in archs}


def test_sign_test_is_exact_and_two_sided():
    assert bench.sign_test_p(5, 0) == pytest.approx(2 / 32)
    assert bench.sign_test_p(0, 6) == pytest.approx(2 / 64)
    assert bench.sign_test_p(3, 3) == 1.0
    assert bench.sign_test_p(0, 0) == 1.0
    assert bench.sign_test_p(4, 1) == pytest.approx(2 * 6 / 32)


def _row(arch_id, zoo, remap, scratch):
    inits = {name: {"initial_test_accuracy": acc - 0.1, "test_accuracy": acc, "steps": 158, "seconds": 1.0}
             for name, acc in (("zoo", zoo), ("remap", remap), ("scratch", scratch))}
    return {"arch_id": arch_id, "macs": 3e6, "params": 3e5, "proxy_accuracy": 0.8, "inits": inits}


def test_summary_pairs_architectures_and_report_tells_who_won():
    rows = [_row("a", 0.85, 0.84, 0.80), _row("b", 0.83, 0.83, 0.84), _row("c", 0.86, 0.85, 0.81)]
    s = bench.summarise(rows + [{"arch_id": "d", "macs": 1, "params": 1, "proxy_accuracy": 0.5, "inits": {}}])
    p = s["paired"]["zoo-scratch"]
    assert s["architectures_complete"] == 3
    assert p["differences"] == pytest.approx([0.05, -0.01, 0.05])
    assert (p["wins"], p["losses"], p["ties"]) == (2, 1, 0)
    assert p["ci95_paired_t"][0] < p["mean"] < p["ci95_paired_t"][1]
    assert "beats scratch on 2 of 3" in bench.verdict(s)
    losing = bench.summarise([_row("a", 0.80, 0.8, 0.82), _row("b", 0.80, 0.8, 0.81)])
    assert bench.verdict(losing).startswith("**Scratch beats the zoo init on 2 of 2")

    report = {
        "task": "t", "date": "d", "command": "c", "finetune_recipe": {"epochs": 2, "warmup_epochs": 0.2},
        "distill_recipe": {"batches": 20}, "arch_seed": 0,
        "dataset": {"name": "fashion-mnist", "content_hash": "0" * 64, "num_train": 10, "num_test": 10},
        "reference": {"source": "r", "sha256": "1" * 64, "test_accuracy": 0.85, "recipe": {"epochs": 8}},
        "zoo_build": {"blocks": 3, "seconds": 1.0}, "architectures": rows, "summary": bench.summarise(rows),
        "trainings_run_now": 9, "finetune_seconds_total": 9.0, "finetune_cpu_seconds_total": 9.0,
        "wall_seconds_this_invocation": 10.0, "torch_threads": 1,
        "machine": {"cpu_count": 2, "cpu_model": "x", "platform": "p", "python": "3", "torch": "2",
                    "load_average_before": [0, 0, 0], "load_average_after": [0, 0, 0]},
    }
    text = bench.markdown(report)
    assert "| 1 | `a` |" in text and "+5.00" in text and "zoo (PR+KD) − scratch" in text
