"""Searches over real HTTP (SQLite + local runner): budget validation, picks under budget, plot, isolation."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from service_helpers import LiveServer, assert_error, wait_for_job

from app.services import jobs as jobs_service
from infra.settings import Settings

pytest_plugins = ["service_fixtures"]

RECIPE = {"space": "mbv3-tiny", "reference": {"epochs": 0.5, "batch_size": 64},
          "distill": {"batches": 2, "batch_size": 32, "heldout_batches": 1}, "build": "lazy"}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str, str]]:
    data = tmp_path_factory.mktemp("data")
    with LiveServer(Settings(data_dir=data, job_backend="local", local_workers=1, torch_threads=1)) as server:
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


@contextmanager
def runner_busy(server: LiveServer) -> Iterator[None]:
    """Occupy the one local job thread with a ``selftest`` job: jobs submitted meanwhile stay queued."""
    owner_id, key = server.new_owner("busy")
    with server.runtime.session_factory() as session:
        blocker = jobs_service.submit(session, owner_id=owner_id, kind="selftest",
                                      payload={"steps": 1200, "step_s": 0.05})
        session.commit()
    try:
        yield
    finally:
        with server.client(key) as c:
            c.post(f"/v1/jobs/{blocker.id}/cancel")
            assert wait_for_job(c, blocker.id, timeout_s=60)["state"] == "cancelled"


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_search_plot_is_a_png_once_the_search_succeeded(zoo: tuple[LiveServer, str, str]) -> None:
    from infra.db.models import Search

    from blockzoo.cost_model import cost
    from blockzoo.space import get_space

    server, key, zoo_id = zoo
    space = get_space("mbv3-tiny")
    budget = cost(space, space.smallest, 1, 10).macs * 2
    with server.client(key) as c:
        with runner_busy(server):
            search = c.post(f"/v1/zoos/{zoo_id}/searches", json={"budget": {"max_macs": budget}, "top_k": 2,
                                                                  "population": 4, "generations": 1, "seed": 1}).json()
            assert search["state"] == "queued"
            assert_error(c.get(f"/v1/searches/{search['id']}/plot.png"), 409, "conflict", "queued")
        assert wait_for_job(c, search["job"]["id"], timeout_s=300)["state"] == "succeeded"
        done = c.get(f"/v1/searches/{search['id']}").json()
        r = c.get(f"/v1/searches/{search['id']}/plot.png")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.content.startswith(PNG_SIGNATURE)
    assert r.content[12:16] == b"IHDR" and struct.unpack(">II", r.content[16:24]) == (750, 480)
    # The search keeps every evaluated candidate (what the plot draws), not only the picks.
    with server.runtime.session_factory() as session:
        stored = session.get(Search, search["id"]).result
    assert len(stored["candidates"]) == done["evaluated"] >= len(done["picks"])
    assert {p["arch_id"] for p in done["picks"]} <= {p["arch_id"] for p in stored["candidates"]}
    assert set(stored["candidates"][0]) >= {"arch_id", "score", "macs", "params"}

    with server.client(server.new_key("intruder")) as other:
        assert_error(other.get(f"/v1/searches/{search['id']}/plot.png"), 404, "not_found")
    with server.client(key) as c:
        assert_error(c.get("/v1/searches/srch_missing/plot.png"), 404, "not_found")
