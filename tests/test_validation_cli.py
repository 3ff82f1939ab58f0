"""``blockzoo validate``: the library's validation in one process, on a zoo directory."""

from __future__ import annotations

import json
import math

import pytest
from scipy import stats

from blockzoo.cli import main
from blockzoo.data import import_builtin
from blockzoo.signals import SIGNAL_NAMES


@pytest.fixture(autouse=True)
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_validate_reports_every_signal_and_a_rerun_trains_nothing(make_zoo, synthetic_store, tmp_path, capsys):
    zoo = make_zoo()
    argv = ["validate", "--zoo", str(zoo.root), "--dataset", str(synthetic_store.path), "--k", "3", "--seeds", "1",
            "--epochs", "0.1", "--batch-size", "64", "--warmup-epochs", "0", "--out", str(tmp_path / "report.json"),
            "--no-progress"]
    assert main([*argv, "--plot", str(tmp_path / "plot.png")]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["n_archs"] == 3 and set(report["signals"]) == set(SIGNAL_NAMES) and report["ceiling"] is None
    assert report["verdict"] in out and "kd_loss" in out
    accuracy = {t["arch"]: t["test_accuracy"] for t in report["trainings"]}
    for name, values in report["signal_values"].items():
        archs = sorted(a for a, v in values.items() if v is not None)
        sign = -1 if name == "kd_loss" else 1
        rho = stats.spearmanr([sign * values[a] for a in archs], [accuracy[a] for a in archs]).statistic
        got = report["signals"][name]["accuracy"]["spearman"]
        assert (got is None) if math.isnan(rho) else got == pytest.approx(rho, abs=1e-4), name
    assert (tmp_path / "plot.png").read_bytes().startswith(b"\x89PNG")

    cached = sorted((zoo.root / "groundtruth" / "cache").glob("*.json"))
    assert len(cached) == 3 and not list((zoo.root / "groundtruth" / "checkpoints").glob("*"))
    signals = zoo.root / "groundtruth" / "signals.json"
    written = [p.stat().st_mtime_ns for p in [*cached, signals]]
    assert main([*argv, "--json"]) == 0  # again: every training and every signal comes from the cache
    assert [p.stat().st_mtime_ns for p in [*cached, signals]] == written
    assert json.loads(capsys.readouterr().out)["trainings"] == report["trainings"]


def test_validate_refuses_another_dataset_and_a_plan_it_cannot_run(make_zoo, synthetic_store, tmp_path, capsys):
    zoo = make_zoo()
    other = import_builtin("synthetic", tmp_path / "datasets", num_images=100, image_size=16, seed=1)
    assert main(["validate", "--zoo", str(zoo.root), "--dataset", str(other.path)]) == 2
    assert "not the dataset the zoo was built from" in capsys.readouterr().err
    base = ["validate", "--zoo", str(zoo.root), "--dataset", str(synthetic_store.path)]
    for extra, message in ((["--k", "2"], "3 to 100 architectures"),
                           (["--design", "budget_band"], "needs a target_macs"),
                           (["--design", "budget_band", "--target-macs", "1", "--tolerance", "0.1"],
                            "widen the band or move the target"),
                           (["--epochs", "0"], "epochs must be positive"),
                           (["d11111-e2.2.2.2.2", "d11111-e9.2.2.2.2"], "architecture 'd11111-e9.2.2.2.2'")):
        assert main([*base, *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert not (zoo.root / "groundtruth").exists()  # nothing trained
