"""The scoring and export pipeline (blockzoo.pipeline) shared by the CLI and the worker jobs."""

from __future__ import annotations

import json
import math

import pytest

from blockzoo.distill import DistillRecipe
from blockzoo.export import load_exported
from blockzoo.files import file_sha256
from blockzoo.pipeline import PROXY_METRICS, export_to_file, score_on_zoo, zero_cost_metrics
from blockzoo.progress import Cancelled, phase_ranges
from blockzoo.proxy import score_architectures

SMALLEST = "d11111-e2.2.2.2.2"
OTHER = "d11111-e4.4.4.4.4"


def _never_opened():
    pytest.fail("the zoo was opened although nothing was missing")


def test_score_computes_what_is_unknown_once_and_reports_each_phase(make_zoo, tiny_space):
    zoo = make_zoo()
    archs = [tiny_space.parse(SMALLEST), tiny_space.parse(OTHER)]
    phases, distilled, published = [], [], []
    run = score_on_zoo(zoo, archs + archs[:1], ["synflow", "kd_loss"],
                       progress=lambda phase, fraction, message: phases.append(phase),
                       on_distilled=lambda opened, done: distilled.append((opened, [a.id for a in done])),
                       on_values=lambda values: published.append(dict(values)))

    assert list(dict.fromkeys(phases)) == ["distilling", "scoring", "zero-cost"]
    assert distilled == [(zoo, [SMALLEST, OTHER])] and run.blocks_distilled == 10
    assert set(run.values) == {(a.id, m) for a in archs for m in (*PROXY_METRICS, "synflow")}
    assert [set(p) for p in published] == [{(a.id, m) for a in archs for m in PROXY_METRICS},
                                           {(a.id, "synflow") for a in archs}]
    for score in score_architectures(zoo, archs):
        assert run.values[(score.arch_id, "proxy_accuracy")] == score.proxy_accuracy
        assert run.values[(score.arch_id, "kd_loss")] == score.kd_loss
    assert all(isinstance(v, float) and math.isfinite(v) for v in run.values.values())

    # Everything known: nothing is computed and the zoo is never opened.
    again = score_on_zoo(_never_opened, archs, ["synflow"], known=run.values)
    assert again.values == {} and again.blocks_distilled == 0

    # One baseline missing: only that pair is computed, with the same value.
    known = {k: v for k, v in run.values.items() if k != (OTHER, "synflow")}
    phases.clear()
    partial = score_on_zoo(lambda: zoo, archs, ["synflow"], known=known,
                           progress=lambda phase, fraction, message: phases.append(phase))
    assert set(phases) == {"zero-cost"}
    assert partial.values == {(OTHER, "synflow"): run.values[(OTHER, "synflow")]}


def test_non_finite_values_come_back_as_none(make_zoo, tiny_space):
    zoo = make_zoo(DistillRecipe(batches=2, batch_size=32, heldout_batches=0, seed=0), name="no-heldout")
    run = score_on_zoo(zoo, [tiny_space.parse(SMALLEST)])
    assert run.values[(SMALLEST, "heldout_accuracy")] is None  # no held-out batches: NaN accuracy
    assert isinstance(run.values[(SMALLEST, "proxy_accuracy")], float)


def test_unknown_metrics_are_refused_before_the_zoo_is_opened(tiny_space):
    assert zero_cost_metrics(["kd_loss", "naswot", "naswot", "proxy_accuracy"]) == ["naswot"]
    with pytest.raises(ValueError, match="unknown metric\\(s\\) zen"):
        score_on_zoo(_never_opened, [tiny_space.parse(SMALLEST)], ["zen"])


def test_a_stop_request_cancels_scoring(make_zoo, tiny_space):
    zoo = make_zoo()
    published = []
    with pytest.raises(Cancelled):
        score_on_zoo(zoo, [tiny_space.parse(SMALLEST)], should_stop=lambda: True, on_values=published.append)
    assert published == []


def test_export_writes_the_weights_and_the_spec_and_describes_the_file(make_zoo, tiny_space, tmp_path):
    zoo = make_zoo()
    arch = tiny_space.parse(SMALLEST)
    fractions = []
    out = tmp_path / "exports" / "model.safetensors"
    body = export_to_file(zoo, arch, out, spec_file=True,
                          progress=phase_ranges(lambda f, m: fractions.append(f),
                                                {"distilling": (0.0, 0.8), "assembling": (0.85, 1.0)}))

    assert body["arch_id"] == SMALLEST and body["bytes"] == out.stat().st_size
    assert body["sha256"] == file_sha256(out)
    assert json.loads(out.with_suffix(".json").read_text())["arch_id"] == SMALLEST
    net, spec = load_exported(out)
    assert spec == body["spec"] and spec["arch"] == arch.to_dict()
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.json", "model.safetensors"]
