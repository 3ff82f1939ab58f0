"""Searches over real HTTP (SQLite + local runner): budget validation, picks under budget, isolation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from service_helpers import LiveServer, assert_error, wait_for_job

from app.settings import Settings

pytest_plugins = ["service_fixtures"]

RECIPE = {"space": "mbv3-tiny", "reference": {"epochs": 0.5, "batch_size": 64},
          "distill": {"batches": 2, "batch_size": 32, "heldout_batches": 1}, "build": "lazy"}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str, str]]:
    data = tmp_path_factory.mktemp("data")
    with LiveServer(Settings(data_dir=data, job_backend="local", torch_threads=1)) as server:
        key = server.new_key()
        with server.client(key) as c:
            ds = c.post("/v1/datasets/builtin", json={"name": "synthetic", "options": {"num_images": 400}}).json()
            created = c.post("/v1/zoos", json={"dataset_id": ds["id"], **RECIPE}).json()
            assert wait_for_job(c, created["job"]["id"], timeout_s=300)["state"] == "succeeded"
        yield server, key, created["zoo"]["id"]


def test_search_finds_picks_under_the_budget(zoo: tuple[LiveServer, str, str]) -> None:
    from blockzoo.cost_model import cost
    from blockzoo.space import get_space

    server, key, zoo_id = zoo
    space = get_space("mbv3-tiny")
    budget = cost(space, space.smallest, 1, 10).macs * 2
    with server.client(key) as c:
        r = c.post(f"/v1/zoos/{zoo_id}/searches", json={"budget": {"max_macs": budget}, "top_k": 3,
                                                         "population": 4, "generations": 1, "seed": 1})
        assert r.status_code == 202, r.text
        search = r.json()
        assert search["state"] == "queued" and search["picks"] is None
        assert wait_for_job(c, search["job"]["id"], timeout_s=300)["state"] == "succeeded"
        done = c.get(f"/v1/searches/{search['id']}").json()
    assert done["state"] == "succeeded" and 1 <= len(done["picks"]) <= 3
    assert done["evaluated"] >= len(done["picks"])
    scores = [p["score"] for p in done["picks"]]
    assert scores == sorted(scores, reverse=True)
    for pick in done["picks"]:
        assert pick["macs"] <= budget == done["request"]["budget"]["max_macs"]
        assert pick["macs"] == cost(space, space.parse(pick["arch_id"]), 1, 10).macs
    assert done["pareto"]
    # The candidates' scores joined the zoo's score cache: asking for the best is instant.
    with server.client(key) as c:
        best = c.post(f"/v1/zoos/{zoo_id}/scores", json={"architectures": [done["picks"][0]["arch_id"]], "wait": 0})
    assert best.status_code == 200 and best.json()["job_id"] is None
    assert best.json()["items"][0]["proxy_accuracy"] == pytest.approx(done["picks"][0]["score"])


def test_search_errors(zoo: tuple[LiveServer, str, str]) -> None:
    server, key, zoo_id = zoo
    with server.client(key) as c:
        assert_error(c.post(f"/v1/zoos/{zoo_id}/searches", json={"budget": {"max_macs": 10}}),
                     422, "invalid_budget", "smallest achievable")
        assert_error(c.post(f"/v1/zoos/{zoo_id}/searches", json={"budget": {"max_latency_ms": 3}}),
                     422, "invalid_budget", "latency table")
        assert_error(c.post(f"/v1/zoos/{zoo_id}/searches", json={"strategy": "annealing"}), 422, "validation_error")
        assert_error(c.post("/v1/zoos/zoo_missing/searches", json={}), 404, "not_found")
        assert_error(c.get("/v1/searches/srch_missing"), 404, "not_found")
        search = c.post(f"/v1/zoos/{zoo_id}/searches", json={"population": 2, "generations": 0}).json()
    with server.client(server.new_key("intruder")) as other:
        assert_error(other.get(f"/v1/searches/{search['id']}"), 404, "not_found")
        assert_error(other.post(f"/v1/zoos/{zoo_id}/searches", json={}), 404, "not_found")
    with server.client(key) as c:
        assert wait_for_job(c, search["job"]["id"], timeout_s=300)["state"] == "succeeded"
