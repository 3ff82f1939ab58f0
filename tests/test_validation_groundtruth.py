"""blockzoo.validation.groundtruth: cache keys that never move, per-image outcomes, resumable
and exclusive trainings."""

import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
from torch import nn

from blockzoo.progress import Cancelled
from blockzoo.space import get_space
from blockzoo.training import evaluate
from blockzoo.validation.design import resized_space
from blockzoo.data import import_builtin, open_store
from blockzoo.validation import groundtruth
from blockzoo.validation.groundtruth import GroundTruth, GroundTruthRecipe, Training, unpack_correct


@pytest.mark.parametrize("n", [1, 7, 8, 300])
def test_outcomes_round_trip_and_agree_with_evaluate(n):
    torch.manual_seed(n)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    x, y = torch.randn(n, 1, 8, 8), torch.randint(0, 10, (n,))
    out = groundtruth.test_outcomes(net, x, y, batch_size=64)
    correct = unpack_correct({**out, "test_examples": n})
    with torch.no_grad():
        logits = net(x)
    assert correct.shape == (n,) and correct.dtype == bool
    np.testing.assert_array_equal(correct, (logits.argmax(1) == y).numpy())
    assert correct.mean() == pytest.approx(evaluate(net, x, y))
    # Independent computations of the two continuous measures.
    assert out["test_nll"] == pytest.approx(float(nn.functional.cross_entropy(logits, y)), rel=1e-5)
    p_true = logits.softmax(1)[torch.arange(n), y].mean()
    assert out["test_mean_p_true"] == pytest.approx(float(p_true), rel=1e-5)


def test_records_without_outcomes_unpack_to_none():
    assert unpack_correct({"test_accuracy": 0.9}) is None


def _store(content_hash: str):
    return types.SimpleNamespace(meta={"content_hash": content_hash})


def test_cache_key_of_a_committed_result_is_reproduced(tmp_path):
    # bench/results/cache/groundtruth/10513a7587cf3c30b174b1ea.json: dev architecture, SC seed 1,
    # the committed CPU-scale recipe. Changing what enters a key would orphan every cached training.
    space = resized_space(get_space("mbv3-tiny"), 28)
    gt = GroundTruth(space, _store("5f09d9a4bd8353e388da88734058c6c3f1600509e111558ea91cea2ef6f40986"),
                     GroundTruthRecipe(epochs=4, batch_size=256, warmup_epochs=0.3), cache_dir=tmp_path,
                     checkpoint_dir=tmp_path)
    training = Training(space.parse("d41412-e6828.6.44a4.4.8a"), "SC", 1)
    assert gt.key(training) == "10513a7587cf3c30b174b1ea2dd21850de29d64fd3a2136c9edc0056ca0217ed"
    assert gt.cache_path(training).name == "10513a7587cf3c30b174b1ea.json"
    # Another device's runs are other results: their keys differ.
    on_gpu = GroundTruth(space, gt.store, gt.recipe, cache_dir=tmp_path, checkpoint_dir=tmp_path,
                         device=torch.device("cuda"))
    assert on_gpu.key(training) != gt.key(training)


def test_finetuned_trainings_need_a_zoo(tmp_path, tiny_space):
    gt = GroundTruth(tiny_space, _store("x"), GroundTruthRecipe(), cache_dir=tmp_path, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="needs a block zoo"):
        gt.key(Training(tiny_space.reference, "PR", 0))
    with pytest.raises(ValueError, match="init must be one of"):
        gt.key(Training(tiny_space.reference, "XX", 0))


def test_recipe_refuses_unknown_fields():
    assert GroundTruthRecipe.from_dict({"epochs": 2}) == GroundTruthRecipe(epochs=2)
    with pytest.raises(ValueError, match="unknown ground-truth recipe field"):
        GroundTruthRecipe.from_dict({"epoch": 2})


RECIPE = GroundTruthRecipe(epochs=2, batch_size=128, warmup_epochs=0.2)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    # A few batches per epoch: what is tested is the bookkeeping around epochs, not learning.
    info = import_builtin("synthetic", tmp_path_factory.mktemp("datasets"), num_images=400, image_size=16, seed=0)
    return open_store(info.path)


def _trainer(root, space, store):
    return GroundTruth(space, store, RECIPE, cache_dir=root / "cache", checkpoint_dir=root / "checkpoints",
                       log=lambda message: None)


def test_a_killed_training_resumes_at_its_last_epoch_and_ends_as_an_uninterrupted_one(
        tmp_path, tiny_space, small_store):
    training = Training(tiny_space.smallest, "SC", 0)
    interrupted = _trainer(tmp_path / "a", tiny_space, small_store)
    with pytest.raises(Cancelled):
        interrupted.run(training, should_stop=lambda: True)  # stops after the first epoch's checkpoint
    key = interrupted.key(training)[:24]
    assert (tmp_path / "a" / "checkpoints" / f"{key}.pt").is_file()
    assert not (tmp_path / "a" / "checkpoints" / f"{key}.claim").exists()
    assert interrupted.cached(training) is None
    resumed = _trainer(tmp_path / "a", tiny_space, small_store).run(training)
    steps_per_epoch = resumed["steps"] // 2
    assert resumed["resumed_from_step"] == steps_per_epoch > 0
    assert not (tmp_path / "a" / "checkpoints" / f"{key}.pt").exists()

    straight = _trainer(tmp_path / "b", tiny_space, small_store).run(training)
    assert straight["resumed_from_step"] == 0
    assert resumed["test_accuracy"] == straight["test_accuracy"]
    assert resumed["test_correct_bits"] == straight["test_correct_bits"]
    # Cached: the same record comes back without training again.
    again = _trainer(tmp_path / "a", tiny_space, small_store)
    assert again.run(training, should_stop=lambda: pytest.fail("trained a cached result")) == resumed


def test_a_training_claimed_by_a_live_worker_is_left_to_it(tmp_path, tiny_space, small_store):
    gt = _trainer(tmp_path, tiny_space, small_store)
    training = Training(tiny_space.smallest, "SC", 3)
    claim = tmp_path / "checkpoints" / f"{gt.key(training)[:24]}.claim"
    claim.parent.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        claim.write_text(str(other.pid))
        assert gt.run(training) is None and claim.exists()
    finally:
        other.kill()
        other.wait()
    # The worker died: its claim is stale and the next worker takes the training over.
    calls = []
    with pytest.raises(Cancelled):
        gt.run(training, should_stop=lambda: calls.append(1) or True)
    assert calls and not claim.exists() and os.path.exists(claim.with_suffix(".pt"))
