"""The ``blockzoo`` command line: a real tiny pipeline (import -> reference -> lazy zoo -> score ->
export -> reload), machine-readable output, and user errors that exit 2 without a traceback.

Commands run in-process through ``blockzoo.cli.main``; one runs as ``python -m blockzoo.cli``.
The pipeline is built once per module on 240 synthetic images with recipes small enough for a
shared 2-core machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from blockzoo.cli import ProgressBar, main
from blockzoo.cost_model import cost
from blockzoo.space import get_space

ARCHS = ["d42314-e6642.a8.442.6.888a", '{"depths": [1, 1, 1, 1, 1], "expand": [[2], [4], [6], [8], [10]]}']
SMALLEST = "d11111-e2.2.2.2.2"
ROOT = Path(__file__).resolve().parents[1]


def run(*argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of one in-process ``blockzoo`` call."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def run_json(*argv: str) -> Any:
    code, out, err = run(*argv, "--json", "--no-progress")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # On a shared 2-core machine, 2 torch threads competing with other processes are many times
    # slower than 1 (measured: 15 s vs 0.9 s per reference step); restore the setting afterwards.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """dataset import -> reference train -> zoo build --lazy -> score, each through the CLI."""
    root = tmp_path_factory.mktemp("cli")
    dataset = run_json("dataset", "import", "synthetic", "--root", str(root / "datasets"),
                       "--option", "num_images=240")
    reference = run_json("reference", "train", "--dataset", dataset["path"], "--space", "mbv3-tiny",
                         "--out", str(root / "reference.safetensors"), "--epochs", "1", "--batch-size", "50")
    zoo = run_json("zoo", "build", "--dataset", dataset["path"], "--reference", str(root / "reference.safetensors"),
                   "--space", "mbv3-tiny", "--out", str(root / "zoo"), "--lazy", "--batches", "2",
                   "--batch-size", "16")
    scores = run_json("score", "--zoo", str(root / "zoo"), *ARCHS)
    return {"root": root, "dataset": dataset, "reference": reference, "zoo": zoo, "scores": scores}


# ---------------------------------------------------------------------------------------------
# The pipeline


def test_dataset_import_prints_the_store_path_and_its_hash(pipeline):
    dataset = pipeline["dataset"]
    assert Path(dataset["path"]).name == dataset["content_hash"]
    assert (Path(dataset["path"]) / "meta.json").is_file()
    assert dataset["num_train"] + dataset["num_test"] == 240
    assert dataset["image_shape"] == [16, 16, 1]


def test_reference_train_reports_test_accuracy_and_time(pipeline):
    reference = pipeline["reference"]
    assert 0.0 <= reference["test_accuracy"] <= 1.0
    assert reference["steps"] == 4  # 200 training images, batches of 50, one epoch
    assert reference["seconds"] > 0
    assert reference["recipe"]["batch_size"] == 50 and reference["recipe"]["lr"] == 0.1  # unset: default
    assert Path(reference["path"]).is_file()
    assert not list(pipeline["root"].glob("*.checkpoint.pt"))


def test_lazy_zoo_build_distils_nothing_until_an_architecture_needs_it(pipeline):
    zoo = pipeline["zoo"]
    assert zoo["build"] == "lazy" and zoo["blocks_distilled"] == 0 and zoo["blocks_stored"] == 0
    assert zoo["blocks_total"] == 5 * 780
    assert zoo["recipe"]["batches"] == 2 and zoo["recipe"]["batch_size"] == 16


def test_score_reports_proxy_kd_loss_heldout_and_cost_per_architecture_in_order(pipeline):
    scores = pipeline["scores"]
    space = get_space("mbv3-tiny")
    expected = [space.parse(json.loads(a) if a.startswith("{") else a) for a in ARCHS]
    assert [i["arch_id"] for i in scores["items"]] == [a.id for a in expected]
    assert scores["blocks_distilled"] == 10  # two architectures share no block
    for item, arch in zip(scores["items"], expected):
        assert 0.0 <= item["proxy_accuracy"] <= 1.0 and 0.0 <= item["heldout_accuracy"] <= 1.0
        assert item["kd_loss"] >= 0.0
        c = cost(space, arch, in_channels=1, num_classes=10)
        assert (item["macs"], item["params"]) == (c.macs, c.params)
        assert item["architecture"] == arch.to_dict()


def test_second_score_reuses_the_stored_blocks_and_prints_a_table(pipeline, capsys):
    assert main(["score", "--zoo", str(pipeline["root"] / "zoo"), ARCHS[0], "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "proxy acc" in out and ARCHS[0] in out
    assert "(0 block(s) distilled)" in out


def test_zoo_info_counts_the_stored_blocks_per_stage(pipeline):
    info = run_json("zoo", "info", str(pipeline["root"] / "zoo"))
    assert info["blocks_stored"] >= 10
    assert [b["stage"] for b in info["blocks"]] == [1, 2, 3, 4, 5]
    assert all(b["stored"] >= 2 and b["candidates"] == 780 for b in info["blocks"])


def test_exported_network_reloads_and_reproduces_the_proxy_accuracy(pipeline):
    import torch

    from blockzoo.export import assemble_for_export, load_exported
    from blockzoo.zoo import BlockZoo

    out = pipeline["root"] / "model.safetensors"
    body = run_json("export", "--zoo", str(pipeline["root"] / "zoo"), ARCHS[0], "--out", str(out))
    assert body["arch_id"] == ARCHS[0] and body["bytes"] == out.stat().st_size
    net, spec = load_exported(out)
    assert spec["arch_id"] == ARCHS[0] and spec["in_channels"] == 1

    zoo = BlockZoo.open(pipeline["root"] / "zoo")
    kd = zoo.kd_data
    with torch.no_grad():
        logits = net(kd.inputs)
        assert torch.allclose(logits, assemble_for_export(zoo, ARCHS[0])(kd.inputs), atol=1e-5)
    accuracy = float((logits.argmax(1) == kd.labels).float().mean())
    proxy = pipeline["scores"]["items"][0]["proxy_accuracy"]
    assert abs(accuracy - proxy) <= 1 / len(kd.labels)  # the proxy's BN recalibration, at most one tie apart


def test_score_with_zero_cost_metrics_reports_their_values_on_the_kd_batches(pipeline):
    from blockzoo.zerocost import score_zero_cost
    from blockzoo.zoo import BlockZoo

    body = run_json("score", "--zoo", str(pipeline["root"] / "zoo"), SMALLEST, "--metrics", "naswot,synflow,kd_loss")
    assert body["metrics"] == ["naswot", "synflow"]
    values = body["items"][0]["metrics"]
    assert set(values) == {"naswot", "synflow"}

    zoo = BlockZoo.open(pipeline["root"] / "zoo")
    batches = list(zip(zoo.kd_data.batches(), zoo.kd_data.label_batches()))
    expected = score_zero_cost(zoo.space, [SMALLEST], ["naswot", "synflow"], batches, zoo.in_channels,
                               zoo.num_classes)[0]
    for metric, value in values.items():
        assert isinstance(value, float) and math.isfinite(value), (metric, value)
        assert value == pytest.approx(expected[metric], rel=1e-9), metric


def test_unknown_metric_is_refused_before_any_work(pipeline, capsys):
    assert main(["score", "--zoo", str(pipeline["root"] / "zoo"), SMALLEST, "--metrics", "zen"]) == 2
    assert "unknown metric(s) zen" in capsys.readouterr().err


def test_zoo_build_refuses_an_existing_zoo_without_resume(pipeline, capsys):
    root = pipeline["root"]
    code = main(["zoo", "build", "--dataset", pipeline["dataset"]["path"], "--reference",
                 str(root / "reference.safetensors"), "--out", str(root / "zoo")])
    assert code == 2 and "--resume" in capsys.readouterr().err
    assert run_json("zoo", "build", "--out", str(root / "zoo"), "--resume")["blocks_stored"] >= 10


def test_reference_that_does_not_fit_the_dataset_is_a_user_error(pipeline, capsys):
    rgb = run_json("dataset", "import", "synthetic", "--root", str(pipeline["root"] / "datasets"),
                   "--option", "num_images=100", "--option", "channels=3")
    code = main(["zoo", "build", "--dataset", rgb["path"], "--reference",
                 str(pipeline["root"] / "reference.safetensors"), "--out", str(pipeline["root"] / "rgb-zoo")])
    err = capsys.readouterr().err
    assert code == 2 and "does not fit" in err and "3-channel" in err and "Traceback" not in err
    assert not (pipeline["root"] / "rgb-zoo").exists()


# ---------------------------------------------------------------------------------------------
# Pure commands and JSON


def test_cost_json_matches_the_cost_model_for_ids_and_configs():
    space = get_space("mbv3-tiny")
    body = run_json("cost", "--space", "mbv3-tiny", *ARCHS, "--in-channels", "1")
    assert body["in_channels"] == 1 and body["num_classes"] == 10
    for item, text in zip(body["items"], ARCHS):
        c = cost(space, json.loads(text) if text.startswith("{") else text, in_channels=1, num_classes=10)
        assert (item["macs"], item["params"]) == (c.macs, c.params)


def test_cost_prints_a_table_and_sample_is_seeded(capsys):
    assert main(["cost", SMALLEST]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["architecture", "MACs", "params"] and SMALLEST in out
    first, again = run_json("cost", "--sample", "3", "--seed", "7"), run_json("cost", "--sample", "3", "--seed", "7")
    assert [i["arch_id"] for i in first["items"]] == [i["arch_id"] for i in again["items"]]
    assert len(first["items"]) == 3


def test_spaces_lists_presets_and_dumps_one_as_json(capsys, tmp_path):
    assert main(["spaces"]) == 0
    out = capsys.readouterr().out
    assert "mbv3-tiny" in out and "mbv3-cifar" in out
    tiny = run_json("spaces", "mbv3-tiny")
    assert tiny == get_space("mbv3-tiny").to_dict()
    custom = tmp_path / "custom.json"
    custom.write_text(json.dumps({**tiny, "name": "custom", "depth_choices": [1, 2]}))
    assert run_json("cost", "--space", str(custom), "d11111-e2.2.2.2.2")["space"] == "custom"
    assert len(run_json("spaces")) == 2


def test_python_dash_m_runs_the_cost_command():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "blockzoo.cli", "cost", SMALLEST, "--json"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["items"][0]["arch_id"] == SMALLEST


# ---------------------------------------------------------------------------------------------
# User errors: one line on stderr, exit 2, no traceback


@pytest.mark.parametrize("arch, named", [
    ("d42314-e6642.a8.442.6.887a", "stage 5, layer 3: expansion ratio 7"),
    ('{"depths": [1, 5, 1, 1, 1], "expand": [[2], [2, 2, 2, 2, 2], [2], [2], [2]]}', "stage 2: depth 5"),
    ("not-an-id", "malformed architecture id"),
    ('{"depths": [1', "not valid JSON"),
])
def test_bad_architecture_exits_2_naming_the_stage(arch, named, capsys):
    assert main(["cost", arch]) == 2
    err = capsys.readouterr().err
    assert err.startswith("blockzoo cost: error: ") and named in err and "Traceback" not in err


def test_bad_architecture_in_score_exits_2_before_any_work(pipeline, capsys):
    assert main(["score", "--zoo", str(pipeline["root"] / "zoo"), "d11111-e2.2.3.2.2"]) == 2
    assert "stage 3, layer 1" in capsys.readouterr().err


def test_missing_dataset_exits_2(tmp_path, capsys):
    code = main(["reference", "train", "--dataset", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "r.safetensors")])
    err = capsys.readouterr().err
    assert code == 2 and "no dataset store" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["dataset", "import", "imagenet", "--root", "{tmp}"], "neither a built-in dataset"),
    (["dataset", "import", "digits", "--root", "{tmp}", "--train-limit", "5"], "unknown option(s) train_limit"),
    (["reference", "train", "--dataset", "{tmp}", "--out", "{tmp}/r.safetensors", "--epochs", "0"],
     "epochs must be in (0, 1000]"),
    (["score", "--zoo", "{tmp}", SMALLEST], "no block zoo"),
    (["score", "--zoo", "{tmp}"], None),
    (["cost", "--space", "mbv9", SMALLEST], "unknown search space 'mbv9'"),
    (["cost"], "give one or more architectures"),
    (["export", "--zoo", "{tmp}", SMALLEST, "--out", "{tmp}/m.safetensors"], "no block zoo"),
])
def test_user_errors_exit_2_with_a_message(argv, message, tmp_path, capsys):
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    if message:
        assert message in err


def test_usage_errors_and_help():
    assert run()[0] == 2
    code, _, err = run("zoo")
    assert code == 2 and "build" in err
    assert run("score", "--bogus")[0] == 2
    assert run("--help")[0] == 0


def test_progress_bar_follows_the_core_callbacks():
    sink = io.StringIO()
    with ProgressBar("distilling", enabled=True, file=sink) as bar:
        bar(0.5, "distilled 1/2 blocks")
        bar(1.0, "distilled 2/2 blocks")
    text = sink.getvalue()
    assert "distilling" in text and "100%" in text and "distilled 2/2 blocks" in text
