"""Auth, the error shape, probes, spaces and cost over real HTTP (SQLite + local backend)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from service_helpers import ROOT, LiveServer, assert_error, service_env

from infra.settings import Settings

pytest_plugins = ["service_fixtures"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("data")
    with LiveServer(Settings(data_dir=data, job_backend="local")) as live:
        yield live


@pytest.fixture(scope="module")
def key(server: LiveServer) -> str:
    return server.new_key()


def test_health_and_ready_need_no_key(server: LiveServer) -> None:
    with server.client() as c:
        assert c.get("/health").json() == {"status": "ok"}
        assert c.get("/ready").json() == {"status": "ready", "database": "sqlite", "job_backend": "local"}


def test_missing_key_is_401_with_bearer_challenge(server: LiveServer) -> None:
    with server.client() as c:
        r = c.get("/v1/spaces")
    assert_error(r, 401, "unauthorized", "missing API key", "create-key")
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Bearer bz_not-a-real-key", "Bearer nope", "Basic abc", "Bearer"])
def test_invalid_key_is_401(server: LiveServer, header: str) -> None:
    with server.client() as c:
        r = c.get("/v1/spaces", headers={"Authorization": header})
    assert_error(r, 401, "unauthorized")


def test_create_key_command_prints_a_working_key_last(server: LiveServer) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "create-key", "--data-dir", str(server.settings.data_dir)],
        cwd=ROOT, env=service_env(), capture_output=True, text=True, timeout=120, check=True,
    )
    new_key = out.stdout.strip().splitlines()[-1]
    assert new_key.startswith("bz_")
    with server.client(new_key) as c:
        assert c.get("/v1/spaces").status_code == 200


def test_keys_are_stored_as_digests_only(server: LiveServer, key: str) -> None:
    from sqlalchemy import select

    from infra.db.models import ApiKey

    with server.runtime.session_factory() as session:
        rows = session.scalars(select(ApiKey)).all()
    assert rows and all(key not in (r.digest, r.prefix) and len(r.digest) == 64 for r in rows)
    assert any(key.startswith(r.prefix) for r in rows)


def test_unknown_route_uses_the_error_shape(server: LiveServer, key: str) -> None:
    with server.client(key) as c:
        assert_error(c.get("/v1/nothing-here"), 404, "not_found", "see /docs")


def test_spaces_list_and_detail(server: LiveServer, key: str) -> None:
    with server.client(key) as c:
        page = c.get("/v1/spaces").json()
        assert {"items", "total", "limit", "offset"} == set(page)
        assert {s["name"] for s in page["items"]} >= {"mbv3-tiny", "mbv3-cifar"}
        detail = c.get("/v1/spaces/mbv3-tiny").json()
        assert detail["input_size"] == 16 and detail["blocks_per_stage"] == 780
        assert detail["reference"]["config"]["depths"] == [4, 4, 4, 4, 4]
        assert_error(c.get("/v1/spaces/resnet"), 404, "not_found", "mbv3-tiny")


def test_cost_matches_the_cost_model(server: LiveServer, key: str) -> None:
    from blockzoo.cost_model import cost
    from blockzoo.space import get_space

    space = get_space("mbv3-tiny")
    archs = [space.reference.to_dict(), space.smallest.id]
    with server.client(key) as c:
        r = c.post("/v1/cost", json={"space": "mbv3-tiny", "architectures": archs, "in_channels": 1})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    for item, arch in zip(items, (space.reference, space.smallest)):
        expected = cost(space, arch, in_channels=1, num_classes=10)
        assert (item["arch_id"], item["macs"], item["params"]) == (arch.id, expected.macs, expected.params)


def test_cost_accepts_a_custom_space(server: LiveServer, key: str) -> None:
    from blockzoo.space import get_space

    definition = get_space("mbv3-tiny").to_dict() | {"name": "mine", "widths": [8, 8, 16, 16, 24]}
    with server.client(key) as c:
        r = c.post("/v1/cost", json={"space": definition, "architectures": ["d11111-e2.2.2.2.2"]})
        assert r.status_code == 200 and r.json()["space"] == "mine"
        bad = definition | {"strides": [1, 3, 2, 1, 2]}
        assert_error(c.post("/v1/cost", json={"space": bad, "architectures": ["d11111-e2.2.2.2.2"]}),
                     422, "invalid_space", "strides")


def test_invalid_architecture_is_422_naming_the_stage(server: LiveServer, key: str) -> None:
    bad = {"depths": [4, 2, 3, 1, 4], "expand": [[6, 6, 4, 2], [10, 7], [4, 4, 2], [6], [8, 8, 8, 10]]}
    with server.client(key) as c:
        err = assert_error(c.post("/v1/cost", json={"space": "mbv3-tiny", "architectures": ["d11111-e2.2.2.2.2", bad]}),
                           422, "invalid_architecture", "architectures[1]", "stage 2", "allowed ratios")
        assert err["details"]["index"] == 1
        assert_error(c.post("/v1/cost", json={"space": "mbv3-tiny", "architectures": ["d5-e2"]}),
                     422, "invalid_architecture")
        assert_error(c.post("/v1/cost", json={"space": "nope", "architectures": ["d11111-e2.2.2.2.2"]}),
                     422, "invalid_space", "known spaces")


def test_malformed_body_is_422_validation_error(server: LiveServer, key: str) -> None:
    with server.client(key) as c:
        err = assert_error(c.post("/v1/cost", json={"space": "mbv3-tiny", "architectures": []}),
                           422, "validation_error", "architectures")
    assert err["details"][0]["field"] == "architectures"


def test_openapi_docs_page_is_served(server: LiveServer) -> None:
    with server.client() as c:
        assert "swagger" in c.get("/docs").text.lower()
        assert c.get("/openapi.json").json()["info"]["title"] == "BlockZoo"
