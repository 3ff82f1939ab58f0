"""Latency lookup tables (blockzoo.latency): measuring, lazy entries, prediction = sum of parts,
JSON round trip, calibration, and refusal to measure on another machine."""

from __future__ import annotations

import json

import pytest
import torch

from blockzoo.latency import (
    LatencyTable, LatencyTableError, Timing, machine_description, measure_ms, measure_networks_ms,
)
from blockzoo.space import ArchitectureError, SearchSpace, get_space, sample_architectures

SPACE = SearchSpace.from_dict({**get_space("mbv3-tiny").to_dict(), "name": "tiny-latency-test",
                               "depth_choices": [1, 2], "expand_choices": [2, 4]})
FAST = Timing(warmup=1, repeats=2, rounds=2)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def table() -> LatencyTable:
    return LatencyTable.measure(SPACE, 1, 10, batch_size=2, timing=FAST)


def test_a_new_table_has_prefix_head_and_the_smallest_blocks_all_positive(table):
    assert table.prefix_ms > 0 and table.head_ms > 0
    assert set(table.blocks) >= {(m, e) for m, e in enumerate(SPACE.smallest.expand)}
    assert all(ms > 0 for ms in table.blocks.values())
    assert table.can_measure and table.machine == machine_description("cpu")


def test_prediction_is_the_sum_of_the_parts_and_missing_blocks_are_measured_lazily(table):
    arch = SPACE.parse({"expand": [[4, 4], [2], [4, 2], [4], [2, 4]]})
    before = len(table)
    parts = table.breakdown(arch)
    assert len(table) > before  # new blocks measured on first use
    assert list(parts) == ["prefix", "s1:44", "s2:2", "s3:42", "s4:4", "s5:24", "head"]
    assert parts["prefix"] == table.prefix_ms and parts["s3:42"] == table.blocks[(2, (4, 2))]
    assert table.predict(arch) == pytest.approx(sum(parts.values()))
    assert table.predict(arch.id) == table.predict(arch.to_dict()) == table.predict(arch)


def test_ensure_measures_only_what_is_missing(table):
    archs = sample_architectures(SPACE, 6, 3)
    table.ensure(archs)
    assert table.ensure(archs) == 0
    assert all((m, e) in table.blocks for a in archs for m, e in enumerate(a.expand))


def test_json_round_trip_keeps_every_entry_and_prediction(table, tmp_path):
    archs = sample_architectures(SPACE, 4, 4)
    table.ensure(archs)
    table.save(tmp_path / "t.json")
    loaded = LatencyTable.load(tmp_path / "t.json")
    assert loaded.to_dict() == table.to_dict()
    assert loaded.blocks == table.blocks and loaded.timing == table.timing and loaded.batch_size == 2
    assert [loaded.predict(a) for a in archs] == [table.predict(a) for a in archs]
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["unit"] == "ms" and "s1" in data["blocks"] and not list(tmp_path.glob(".tmp-*"))


def test_a_table_from_another_machine_predicts_stored_entries_but_measures_nothing(table):
    foreign = LatencyTable.from_dict({**table.to_dict(), "machine": "cuda: some GPU; torch 0; 8 threads"})
    assert not foreign.can_measure
    assert foreign.predict(SPACE.smallest) == table.predict(SPACE.smallest)
    missing = next(e for e in SPACE.stage_blocks(4) if (4, e) not in foreign.blocks)
    with pytest.raises(LatencyTableError, match="cannot be measured here"):
        foreign.block_ms(4, missing)


def test_wrong_space_or_block_is_refused(table):
    with pytest.raises(LatencyTableError, match="tiny-latency-test"):
        table.check_compatible(get_space("mbv3-tiny"), 1, 10)
    table.check_compatible(SPACE, 1, 10)
    with pytest.raises(ArchitectureError, match="expansion ratio 6"):
        table.measure_blocks([(0, (6,))])
    with pytest.raises(ArchitectureError, match="stage index 7"):
        table.measure_blocks([(7, (2,))])


def test_calibration_scales_predictions(tmp_path):
    table = LatencyTable.measure(SPACE, 1, 10, timing=FAST)
    archs = sample_architectures(SPACE, 3, 5)
    raw = [table.predict(a) for a in archs]
    scale = table.calibrate(archs)
    assert scale > 0 and table.scale == scale
    assert [table.predict(a) for a in archs] == pytest.approx([scale * r for r in raw])
    table.save(tmp_path / "c.json")
    assert LatencyTable.load(tmp_path / "c.json").scale == scale


def test_measuring_functions_and_timing_validation():
    nets = measure_networks_ms(SPACE, [SPACE.smallest, SPACE.reference], 1, 10, timing=FAST)
    assert len(nets) == 2 and all(ms > 0 for ms in nets)
    assert measure_ms(torch.nn.Identity(), torch.zeros(1), Timing(warmup=0, repeats=1, rounds=1,
                                                                   statistic="median", clock="thread")) >= 0
    for bad in (dict(repeats=0), dict(rounds=0), dict(statistic="mean"), dict(clock="cycles")):
        with pytest.raises(ValueError):
            Timing(**bad)
    torch.set_num_threads(2)
    try:
        with pytest.raises(ValueError, match="set_num_threads"):
            measure_ms(torch.nn.Identity(), torch.zeros(1), Timing(clock="thread"))
    finally:
        torch.set_num_threads(1)
