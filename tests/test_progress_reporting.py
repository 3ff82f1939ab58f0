"""Progress that tells: phases named in every message, reports by time (not every N steps),
the evaluation after training reported, a search's first generation reported while it distils."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from blockzoo import progress as progress_module
from blockzoo.progress import Ticker, labelled, phase_of, remaining_seconds
from blockzoo.proxy import ProxyScore
from blockzoo.search import Budget, search_zoo
from blockzoo.space import get_space
from blockzoo.training import TrainRecipe, train_network


def test_ticker_is_due_at_most_once_per_interval() -> None:
    ticker = Ticker(0.2)
    assert ticker.due()  # the first call reports at once
    assert not ticker.due()
    time.sleep(0.25)
    assert ticker.due() and not ticker.due()


def test_messages_name_their_phase() -> None:
    assert phase_of("training: step 3/10 loss 1.2") == "training"
    assert phase_of("precise BN: batch 2/20") == "precise BN"
    assert phase_of("distilling: 5/9 blocks (stage 1/5); generation 1") == "distilling"
    assert phase_of("started") is None and phase_of("") is None and phase_of(None) is None
    assert phase_of("re-queued: the process stopped") == "re-queued"
    assert phase_of("failed at /tmp/x: no space") is None  # a label is a short name, not any text before ':'
    assert labelled("scoring", "3/4 architectures") == "scoring: 3/4 architectures"
    assert labelled("scoring", "scoring: 3/4 architectures") == "scoring: 3/4 architectures"


def test_remaining_seconds_follow_the_pace_so_far() -> None:
    assert remaining_seconds(30.0, 0.25) == pytest.approx(90.0)
    assert remaining_seconds(30.0, 0.005) is None  # too early to tell
    assert remaining_seconds(0.0, 0.5) is None
    assert remaining_seconds(12.0, 1.0) == 0.0


def _tiny_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3))


def _train(interval_s: float, monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, str]]:
    monkeypatch.setattr(progress_module, "REPORT_INTERVAL_S", interval_s)
    torch.manual_seed(0)
    x, y = torch.randn(120, 1, 8, 8), torch.randint(0, 3, (120,))
    seen: list[tuple[float, str]] = []
    train_network(_tiny_net(), x, y, TrainRecipe(epochs=2, batch_size=8, precise_bn_batches=5, flip=False),
                  x_test=x[:100], y_test=y[:100], device=torch.device("cpu"),
                  progress=lambda f, m: seen.append((f, m)))
    return seen


def test_training_reports_by_time_then_precise_bn_and_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    every = _train(0.0, monkeypatch)  # an interval of 0: every step is due
    training = [m for _, m in every if phase_of(m) == "training"]
    assert len(training) == 30 and training[-1].startswith("training: step 30/30 loss ")  # not every 20th
    phases = list(dict.fromkeys(phase_of(m) for _, m in every))
    assert phases == ["training", "precise BN", "evaluating"]
    assert [m for _, m in every if phase_of(m) != "training"][-1] == "evaluating: 100/100 test images"
    fractions = [f for f, _ in every]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    # The evaluation after the last step is part of the work: training ends before 100 %.
    last_step = max(f for f, m in every if phase_of(m) == "training")
    assert 0.5 < last_step < 0.99

    rare = _train(3600.0, monkeypatch)  # a long interval: the first step and the end of each phase
    assert [m.split(" loss")[0] for _, m in rare if phase_of(m) == "training"] == ["training: step 1/30",
                                                                                "training: step 30/30"]


class _StubZoo:
    """What search_zoo asks of a zoo, with a first generation whose blocks are missing."""

    def __init__(self) -> None:
        self.space, self.in_channels, self.num_classes = get_space("mbv3-tiny"), 1, 10
        self.distilled: set = set()

    def missing_blocks(self, archs):
        return {0: [a.expand[0] for a in archs if a not in self.distilled]} if set(archs) - self.distilled else {}

    def ensure_blocks(self, archs, progress=None, should_stop=None):
        todo = [a for a in archs if a not in self.distilled]
        for i, arch in enumerate(todo):
            self.distilled.add(arch)
            if progress is not None:
                progress((i + 1) / len(todo), f"distilling: {i + 1}/{len(todo)} blocks (stage 1/5)")
        return len(todo)


def test_search_reports_its_first_generation_while_it_distils(monkeypatch: pytest.MonkeyPatch) -> None:
    import blockzoo.proxy

    def fake_scores(zoo, archs, *, progress=None, should_stop=None, cache=None, **_):
        out = []
        for n, arch in enumerate(archs):
            out.append(ProxyScore(arch.id, sum(sum(e) for e in arch.expand) / 100, 0.1, 0.5))
            if progress is not None:
                progress((n + 1) / len(archs), f"scoring: {n + 1}/{len(archs)} architectures")
        return out

    monkeypatch.setattr(blockzoo.proxy, "score_architectures", fake_scores)
    seen: list[tuple[float, str]] = []
    result = search_zoo(_StubZoo(), Budget(), population=8, generations=2, seed=0,
                        progress=lambda f, m: seen.append((f, m)))
    assert result.evaluated == 8 + 2 * 6
    first_search = next(i for i, (_, m) in enumerate(seen) if phase_of(m) == "searching")
    before = seen[:first_search]
    assert [phase_of(m) for _, m in before][:8] == ["distilling"] * 8
    assert all(m.endswith("; generation 1") for _, m in before)
    assert "scoring: 8/8 architectures; generation 1" in [m for _, m in before]
    assert 0 < before[0][0] < 8 / 20 and before[-1][0] == pytest.approx(8 / 20)  # inside generation 1's share
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert seen[-1][1].startswith("searching: 20/20 architectures scored (evolution, generation 3), best ")
