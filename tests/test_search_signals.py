"""A search may rank by any signal, in the direction blockzoo.signals gives it."""

import pytest

from blockzoo.cost_model import cost
from blockzoo.pipeline import PROXY_METRICS, score_on_zoo
from blockzoo.search import Budget, search_zoo
from blockzoo.signals import COST_SIGNALS, LOWER_IS_BETTER, SIGNAL_NAMES, SIGNALS, get_signal
from blockzoo.validation import report
from blockzoo.zerocost import METRICS as ZERO_COST_METRICS


def test_every_scored_value_is_a_signal_and_only_kd_loss_points_down():
    # The zero-cost "flops" is MACs, which the cost model gives.
    assert set(SIGNAL_NAMES) == {*PROXY_METRICS, *(set(ZERO_COST_METRICS) - {"flops"}), *COST_SIGNALS}
    assert LOWER_IS_BETTER == {"kd_loss"} and report.LOWER_IS_BETTER is LOWER_IS_BETTER
    assert SIGNALS["kd_loss"].oriented(0.25) == -0.25 and SIGNALS["synflow"].oriented(3.0) == 3.0
    with pytest.raises(ValueError, match="unknown signal 'flopz'; known: proxy_accuracy"):
        get_signal("flopz")


def _search(zoo, metric):
    return search_zoo(zoo, Budget(), "random", metric=metric, seed=0, population=4, generations=0, top_k=4)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, tiny_space, trained_reference, train_tensors, synthetic_store):
    from blockzoo.zoo import BlockZoo, KDData

    from conftest import SMALL_RECIPE

    x, y = train_tensors
    return BlockZoo.create_from_parts(
        tmp_path_factory.mktemp("zoo") / "zoo", tiny_space, trained_reference, KDData.select(x, y, SMALL_RECIPE),
        SMALL_RECIPE, in_channels=x.shape[1], num_classes=synthetic_store.num_classes,
        dataset_hash=synthetic_store.meta["content_hash"])


@pytest.mark.parametrize("metric", ["kd_loss", "synflow", "macs"])
def test_a_search_ranks_by_the_signal_in_its_direction_with_the_values_a_score_gives(zoo, metric):
    result = _search(zoo, metric)
    archs = [p.arch for p in result.candidates]
    assert len(archs) == 4
    if metric == "macs":
        expected = {a.id: float(cost(zoo.space, a, zoo.in_channels, zoo.num_classes).macs) for a in archs}
    else:
        run = score_on_zoo(zoo, archs, [] if metric == "kd_loss" else [metric])
        expected = {a.id: run.values[(a.id, metric)] for a in archs}
    assert {p.arch_id: p.score for p in result.candidates} == pytest.approx(expected, rel=1e-6)
    scores = [p.score for p in result.picks]
    assert scores == sorted(scores, reverse=metric != "kd_loss")  # best first: the lowest KD loss
    best = min(expected.values()) if metric == "kd_loss" else max(expected.values())
    assert result.picks[0].score == pytest.approx(best) and result.history[-1].best_score == pytest.approx(best)


def test_the_search_api_takes_every_signal_and_names_them_when_refusing():
    from pydantic import ValidationError

    from app.schemas.searches import SearchCreate

    assert [SearchCreate(metric=name).metric for name in SIGNAL_NAMES] == list(SIGNAL_NAMES)
    with pytest.raises(ValidationError, match="'kd_loss'"):
        SearchCreate(metric="flops")
