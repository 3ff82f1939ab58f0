"""Latency lookup tables (blockzoo.latency): measuring, lazy entries, prediction = sum of parts,
JSON round trip, calibration, refusal to measure on another machine, the `blockzoo latency
measure` command, and searches under latency budgets on a measured table."""

from __future__ import annotations

import contextlib
import io
import json
import random

import pytest
import torch

from blockzoo.latency import (
    LatencyTable, LatencyTableError, Timing, count_blocks, fit_scale, machine_description, measure_ms,
    measure_networks_ms,
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


# --- complete tables, calibration, the command, budgets on a measured table ----------------------


@pytest.fixture(scope="module")
def complete(tmp_path_factory) -> LatencyTable:
    """The complete table of SPACE (30 blocks) as `blockzoo latency measure` writes it, calibrated on 4 networks."""
    from blockzoo.cli import main

    path = tmp_path_factory.mktemp("latency") / "table.json"
    space_file = path.with_name("space.json")
    space_file.write_text(json.dumps(SPACE.to_dict()))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["latency", "measure", "--space", str(space_file), "--in-channels", "1", "--num-classes", "10",
                     "--batch-size", "2", "--device", "cpu", "--out", str(path), "--architectures", "4",
                     "--warmup", "1", "--repeats", "2", "--rounds", "1", "--threads", "1", "--clock", "thread",
                     "--no-progress", "--json"])
    assert code == 0
    summary = json.loads(out.getvalue())
    assert summary["blocks"] == 30 and summary["out"] == str(path) and summary["calibration"]["coverage"] == 0.95
    return LatencyTable.load(path, lazy=False)


def test_the_command_writes_a_complete_self_describing_calibrated_table(complete):
    data = complete.to_dict()
    complete.check_complete()
    assert len(complete) == count_blocks(SPACE) == 30 and complete.batch_size == 2
    assert data["space"] == SPACE.to_dict() and data["shapes"]["prefix"] == [2, 1, 16, 16]
    assert data["device"] == "cpu" and data["machine"] == machine_description("cpu")
    assert data["torch_version"] == torch.__version__ and data["timing"]["clock"] == "thread"
    points = complete.calibration.points
    assert len(points) == 4 and all(p.summed_ms > 0 and p.measured_ms > 0 for p in points)
    assert complete.scale == pytest.approx(fit_scale([p.ratio for p in points], 0.95))
    # the calibration's summed latency is the table's own sum of parts
    arch = SPACE.parse(points[0].arch_id)
    assert points[0].summed_ms == pytest.approx(complete.predict(arch) / complete.scale)


def test_blocks_are_built_from_shared_layers_with_the_network_s_structure(complete):
    from blockzoo.latency.measure import _PartModules
    from blockzoo.nets import build_block

    parts = _PartModules(complete)
    for m, expand in [(0, (2,)), (1, (4, 2)), (4, (4, 4))]:
        module, example = parts((m, expand))
        assert str(module) == str(build_block(SPACE, m, expand))
        assert len({id(layer) for layer in module}) == len(expand)  # its own module per layer
        assert list(example.shape) == complete.shapes()[f"s{m + 1}"]
        assert module(example).shape[1] == SPACE.widths[m]
    a, _ = parts((1, (4, 2)))
    b, _ = parts((1, (4, 4)))
    assert a[0] is b[0]  # same stage, position and ratio: one module


def test_fit_scale_median_and_upper_bound():
    ratios = [1.1, 1.2, 1.25, 1.3, 1.5]
    assert fit_scale(ratios, 0.5) == 1.25
    high = fit_scale(ratios, 0.95)
    assert high > max(ratios[:-1]) and fit_scale(ratios, 0.99) > high > fit_scale(ratios, 0.8) > 1.25
    assert fit_scale(ratios * 4, 0.95) < high  # more calibration networks, narrower margin
    with pytest.raises(ValueError, match="at least 2"):
        fit_scale([1.2], 0.95)
    with pytest.raises(ValueError, match="coverage"):
        fit_scale(ratios, 1.0)


def test_the_command_refuses_what_it_cannot_measure(tmp_path, capsys):
    from blockzoo.cli import main

    assert main(["latency", "measure", "--space", "nope", "--out", str(tmp_path / "t.json")]) == 2
    assert "unknown search space" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["latency", "measure", "--device", "cuda", "--out", str(tmp_path / "t.json")]) == 2
        assert "CUDA is not available" in capsys.readouterr().err
    assert main(["latency", "measure", "--architectures", "1", "--out", str(tmp_path / "t.json")]) == 2
    assert not (tmp_path / "t.json").exists()


def test_every_pick_of_a_search_under_random_budgets_fits_the_measured_table(complete):
    """Latency alone and with MACs / params bounds, over many random budgets: every candidate the
    search scores (so every pick) satisfies every bound, checked against the table's own
    prediction; a budget below the fastest architecture is refused naming its latency."""
    from blockzoo.search import Budget, InfeasibleBudget, blockwise_cost_fn, evolution_search, random_search

    cost_fn = blockwise_cost_fn(SPACE, 1, 10)
    fastest = complete.fastest()
    low, high = complete.predict(fastest), complete.predict(SPACE.reference)
    big = cost_fn(SPACE.reference)
    rng = random.Random(0)
    searched = 0
    for trial in range(60):
        limits = {"max_latency_ms": rng.uniform(low, high) if trial % 10 else low}
        if trial % 3 == 1:
            limits["max_macs"] = rng.randint(cost_fn(SPACE.smallest).macs, big.macs)
        if trial % 3 == 2:
            limits["max_params"] = rng.randint(cost_fn(SPACE.smallest).params, big.params)
        budget = Budget(**limits)
        search = evolution_search if trial % 2 else random_search
        try:
            result = search(SPACE, lambda archs: [rng.random() for _ in archs], budget, cost_fn,
                            latency_fn=complete.predict, fastest=fastest, seed=trial, population=6, generations=3,
                            max_tries=50)
        except InfeasibleBudget:  # a latency bound and a size bound that no floor meets together
            assert len(limits) == 2
            continue
        searched += 1
        for pick in result.candidates:
            assert pick.latency_ms == complete.predict(pick.arch) <= limits["max_latency_ms"]
            assert pick.macs <= limits.get("max_macs", pick.macs)
            assert pick.params <= limits.get("max_params", pick.params)
        assert result.pareto == result.pareto_by_cost["latency_ms"]
    assert searched >= 40
    with pytest.raises(InfeasibleBudget, match=f"smallest achievable latency_ms = {low:.4g}"):
        evolution_search(SPACE, lambda archs: [0.0] * len(archs), Budget(max_latency_ms=0.99 * low), cost_fn,
                         latency_fn=complete.predict, fastest=fastest)
