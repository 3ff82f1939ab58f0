"""Latency tables as data (blockzoo.latency.table): hostile or mismatched tables are refused with the
reason, predictions are sums of parts, the fastest architecture is the latency floor of budgets,
and none of it needs torch."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from blockzoo.latency.table import (
    Calibration, CalibrationPoint, LatencyTable, LatencyTableError, Timing, count_blocks, part_shapes,
)
from blockzoo.search import Budget, InfeasibleBudget, blockwise_cost_fn, evolution_search
from blockzoo.space import SearchSpace, get_space

ROOT = Path(__file__).resolve().parents[1]
SPACE = SearchSpace.from_dict({**get_space("mbv3-tiny").to_dict(), "name": "tiny-latency-data",
                               "depth_choices": [1, 2], "expand_choices": [2, 4]})


def synthetic_table(seed: int = 0, space: SearchSpace = SPACE) -> LatencyTable:
    """A complete table with made-up latencies: roughly growing with size, with noise that can
    make a smaller block slower than a larger one (as measurements do)."""
    rng = random.Random(seed)
    blocks = {(m, e): (0.2 + 0.1 * sum(e) / 4) * (1 + m / 5) * rng.uniform(0.7, 1.3)
              for m in range(space.num_stages) for e in space.stage_blocks(m)}
    return LatencyTable(space, 1, 10, batch_size=1, device="cpu", machine="cpu: test; torch 0; 1 threads",
                        prefix_ms=0.3, head_ms=0.2, blocks=blocks, scale=1.25, lazy=False,
                        calibration=Calibration(0.95, (CalibrationPoint(space.smallest.id, 1.0, 1.2),
                                                       CalibrationPoint(space.reference.id, 2.0, 2.5))))


def test_json_round_trip_keeps_every_field_and_describes_itself():
    table = synthetic_table()
    data = json.loads(table.to_json())
    assert data["format"] == "blockzoo-latency-table" and data["version"] == 2 and data["unit"] == "ms"
    assert data["space"] == SPACE.to_dict() and data["shapes"] == part_shapes(SPACE, 1, 1)
    assert data["shapes"]["s2"] == [1, 8, 16, 16] and data["shapes"]["head"] == [1, 40, 2, 2]
    assert data["calibration"]["architectures"][1] == {"arch_id": SPACE.reference.id, "summed_ms": 2.0,
                                                       "measured_ms": 2.5}
    again = LatencyTable.from_json(table.to_json())
    assert again.to_dict() == table.to_dict() and again.calibration == table.calibration
    assert again.predict(SPACE.reference) == table.predict(SPACE.reference)


def test_prediction_is_the_scaled_sum_and_the_fastest_architecture_is_the_minimum():
    table = synthetic_table(3)
    arch = SPACE.parse("d12121-e2.44.4.24.2")
    parts = table.breakdown(arch)
    assert list(parts) == ["prefix", "s1:2", "s2:44", "s3:4", "s4:24", "s5:2", "head"]
    assert table.predict(arch) == pytest.approx(1.25 * sum(parts.values()))
    rng = random.Random(0)
    archs = [SPACE.sample(rng) for _ in range(3000)]
    fastest = table.fastest()
    assert all(table.predict(fastest) <= table.predict(a) for a in archs)
    # per stage, the fastest stored block (the space's smallest architecture need not be it)
    for m, expand in enumerate(fastest.expand):
        assert table.blocks[(m, expand)] == min(ms for (s, _), ms in table.blocks.items() if s == m)


def test_a_stored_table_never_measures_a_missing_entry():
    table = synthetic_table()
    del table.blocks[(2, (4, 4))]
    with pytest.raises(LatencyTableError, match="block 44 of stage 3 is not in the latency table"):
        table.predict("d11211-e2.2.44.2.2")
    with pytest.raises(LatencyTableError, match=r"lacks 1 of the 30 candidate blocks \(e.g. block '44' of stage 3\)"):
        table.check_complete()
    synthetic_table().check_complete()


def _mutated(change) -> dict:
    data = synthetic_table().to_dict()
    change(data)
    return data


HOSTILE = [
    ("not an object", lambda d: d.clear() or d.update({"x": 1}), "unknown latency table field"),
    ("wrong version", lambda d: d.update(version=3), "unsupported latency table version 3"),
    ("version as text", lambda d: d.update(version="2"), "unsupported latency table version"),
    ("missing field", lambda d: d.pop("head_ms"), "lacks the field(s) ['head_ms']"),
    ("negative latency", lambda d: d["blocks"]["s2"].update({"4": -1.0}), "blocks.s2.4 must be a positive"),
    ("zero latency", lambda d: d.update(prefix_ms=0), "prefix_ms must be a positive"),
    ("latency as text", lambda d: d["blocks"]["s1"].update({"2": "fast"}), "blocks.s1.2 must be a positive"),
    ("boolean latency", lambda d: d.update(head_ms=True), "head_ms must be a positive"),
    ("block of another space", lambda d: d["blocks"]["s1"].update({"6": 0.1}), "block '6' is not a candidate"),
    ("too deep a block", lambda d: d["blocks"]["s1"].update({"222": 0.1}), "block '222' is not a candidate"),
    ("not a block code", lambda d: d["blocks"]["s1"].update({"2-": 0.1}), "is not a block code"),
    ("stage out of range", lambda d: d["blocks"].update(s9={"2": 0.1}), "'s9' is not a stage"),
    ("stage key", lambda d: d["blocks"].update(stage1={"2": 0.1}), "'stage1' is not a stage"),
    ("shapes of another input", lambda d: d["shapes"].update(prefix=[1, 3, 16, 16]), "shapes do not fit"),
    ("space with wrong types", lambda d: d["space"].update(widths=["8", 16, 24, 32, 40]), "wrong type"),
    ("invalid space", lambda d: d["space"].update(strides=[1, 2, 3, 1, 2]), "stage strides must be 1 or 2"),
    ("huge space", lambda d: d["space"].update(depth_choices=[1, 2, 3, 4, 5, 6], expand_choices=list(range(1, 20))),
     "a latency table holds at most"),
    ("unknown space field", lambda d: d["space"].update(kernel=5), "unknown search-space field"),
    ("wrong unit", lambda d: d.update(unit="us"), "unit must be 'ms'"),
    ("zero scale", lambda d: d.update(scale=0.0), "scale must be a positive"),
    ("timing", lambda d: d["timing"].update(repeats=0), "invalid timing"),
    ("batch size", lambda d: d.update(batch_size=0), "batch_size must be an integer between 1"),
    ("calibration coverage", lambda d: d["calibration"].update(coverage=1.5), "calibration.coverage"),
    ("calibration network", lambda d: d["calibration"]["architectures"][0].update(arch_id="d9-e2"),
     "calibration.architectures[0].arch_id"),
]


@pytest.mark.parametrize("change,reason", [(c, r) for _, c, r in HOSTILE], ids=[n for n, _, _ in HOSTILE])
def test_hostile_or_mismatched_tables_are_refused_with_the_reason(change, reason):
    with pytest.raises(LatencyTableError) as info:
        LatencyTable.from_dict(_mutated(change))
    assert reason in str(info.value)


def test_non_json_nan_and_nesting_are_refused():
    text = synthetic_table().to_json()
    for bad, reason in [(text.replace('"prefix_ms": 0.3', '"prefix_ms": NaN'), "NaN"),
                        (text.replace('"prefix_ms": 0.3', '"prefix_ms": Infinity'), "Infinity"),
                        (text.replace('"prefix_ms": 0.3', '"prefix_ms": 1e999'), "prefix_ms must be a positive"),
                        ("[" * 100_000 + "]" * 100_000, "not valid JSON"), ("{", "not valid JSON"),
                        (b"\xff\xfe", "not valid JSON"), ("[1, 2]", "a latency table is a JSON object")]:
        with pytest.raises(LatencyTableError, match=reason):
            LatencyTable.from_json(bad)


def test_compatibility_is_about_structure_and_shapes():
    table = synthetic_table()
    renamed = SearchSpace.from_dict({**SPACE.to_dict(), "name": "renamed", "description": "x", "dropout": 0.2})
    table.check_compatible(renamed, 1, 10)
    for space, c, n in [(get_space("mbv3-tiny"), 1, 10), (SPACE, 3, 10), (SPACE, 1, 100)]:
        with pytest.raises(LatencyTableError, match="the latency table is for space 'tiny-latency-data'"):
            table.check_compatible(space, c, n)
    assert count_blocks(get_space("mbv3-tiny")) == 3900 and count_blocks(SPACE) == 30


def test_latency_budgets_use_the_fastest_architecture_as_floor_and_name_it_when_impossible():
    cost_fn = blockwise_cost_fn(SPACE, 1, 10)
    for seed in range(20):
        table = synthetic_table(seed)
        fastest, smallest = table.fastest(), SPACE.smallest
        floor = table.predict(fastest)
        # impossible: below the fastest architecture, named with its latency
        with pytest.raises(InfeasibleBudget, match=f"smallest achievable latency_ms = {floor:.4g}") as info:
            Budget(max_latency_ms=floor * 0.999).check_feasible(SPACE, cost_fn, table.predict, fastest)
        assert info.value.smallest == {"latency_ms": pytest.approx(floor)}
        # possible, even where the smallest architecture is slower than the budget
        limit = floor * 1.0001
        assert Budget(max_latency_ms=limit).check_feasible(SPACE, cost_fn, table.predict, fastest) in (
            fastest, smallest)
        result = evolution_search(SPACE, lambda archs: [cost_fn(a).macs for a in archs], Budget(max_latency_ms=limit),
                                  cost_fn, latency_fn=table.predict, fastest=fastest, seed=seed, population=4,
                                  generations=2, max_tries=20)
        assert result.candidates and all(table.predict(p.arch) <= limit for p in result.candidates)
        assert result.pareto == result.pareto_by_cost["latency_ms"]


def test_importing_and_using_tables_and_budgets_needs_no_torch(tmp_path):
    synthetic_table().save(tmp_path / "t.json")
    code = ("import sys; from blockzoo.latency import LatencyTable; from blockzoo.search import Budget, "
            "blockwise_cost_fn; t = LatencyTable.load(sys.argv[1], lazy=False); t.check_complete(); "
            "f = t.fastest(); Budget(max_latency_ms=2 * t.predict(f)).check_feasible(t.space, "
            "blockwise_cost_fn(t.space, 1, 10), t.predict, f); print('torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "t.json")], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_timing_checks_its_fields():
    for bad in (dict(repeats=0), dict(rounds=0), dict(warmup=-1), dict(statistic="mean"), dict(clock="cycles"),
                dict(repeats=2.5), dict(warmup=True)):
        with pytest.raises(ValueError):
            Timing(**bad)
