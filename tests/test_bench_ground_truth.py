"""bench/ground_truth.py: the per-image test outcomes kept with each ground-truth result."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import ground_truth  # noqa: E402

from blockzoo.training import evaluate  # noqa: E402


@pytest.mark.parametrize("n", [1, 7, 8, 300])
def test_outcomes_round_trip_and_agree_with_evaluate(n):
    torch.manual_seed(n)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    x, y = torch.randn(n, 1, 8, 8), torch.randint(0, 10, (n,))
    out = ground_truth.test_outcomes(net, x, y, batch_size=64)
    correct = ground_truth.unpack_correct({**out, "test_examples": n})
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
    assert ground_truth.unpack_correct({"test_accuracy": 0.9}) is None
