"""Hostile and odd input is a 4xx, never a 5xx; limits, quotas and key revocation hold; waiting
clients do not starve the rest of the API (issue 14, items 5-8). Real servers, SQLite and
PostgreSQL."""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.cli import main as cli_main
from blockzoo.space import get_space, sample_architectures
from infra.db.base import new_id
from infra.db.models import Zoo
from infra.settings import Settings
from service_helpers import ROOT, LiveServer, assert_error, free_port, service_env, stop_process, wait_until_healthy

pytest_plugins = ["service_fixtures"]

LISTS = ["/v1/spaces", "/v1/datasets", "/v1/zoos", "/v1/jobs", "/v1/finetunes", "/v1/searches", "/v1/validations",
         "/v1/latency-tables"]


class HeldQueue:
    """A job backend that takes jobs and never runs them: they stay queued (no ML in these tests)."""

    name = "held"

    def enqueue(self, job_id: str) -> None:
        pass

    def check(self) -> None:
        pass

    def close(self) -> None:
        pass


def ready_zoo(server: LiveServer, owner_id: str, dataset_id: str) -> str:
    """A zoo row in state ready (its files are never read: jobs are held)."""
    space = get_space("mbv3-tiny")
    zoo_id = new_id("zoo")
    with server.runtime.session_factory.begin() as session:
        session.add(Zoo(id=zoo_id, owner_id=owner_id, dataset_id=dataset_id, space_name=space.name,
                        space=space.to_dict(), build="lazy", reference_recipe={}, distill_recipe={}, state="ready",
                        path=f"zoos/{zoo_id}", in_channels=1, num_classes=10))
    return zoo_id


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    database_url = request.getfixturevalue("pg_url_module") if request.param == "postgresql" else None
    settings = Settings(data_dir=tmp_path_factory.mktemp(request.param), database_url=database_url,
                        max_json_body_bytes=256 * 1024)
    with LiveServer(settings) as live:
        yield live


@pytest.fixture(scope="module")
def owner(server: LiveServer) -> dict[str, str]:
    owner_id, key = server.new_owner("odd-input")
    with server.client(key) as c:
        dataset = c.post("/v1/datasets/builtin", json={"name": "digits"}).json()
    return {"id": owner_id, "key": key, "dataset_id": dataset["id"]}


def test_out_of_range_offsets_are_422_on_every_list(server: LiveServer, owner: dict[str, str]) -> None:
    with server.client(owner["key"]) as c:
        for path in LISTS:
            for offset in ("18446744073709551616", "-1"):
                r = c.get(path, params={"offset": offset})
                assert r.status_code == 422, (path, offset, r.text)
                assert r.json()["error"]["code"] == "validation_error" and "offset" in r.json()["error"]["message"]
            assert c.get(path, params={"limit": "18446744073709551616"}).status_code == 422, path
        for path in ("/v1/zoos", "/v1/datasets", "/v1/jobs"):  # past the page bound: named in the message
            assert_error(c.get(path, params={"offset": "1000000001"}), 422, "validation_error", "offset")


def test_control_characters_in_ids_names_and_filters_are_4xx(server: LiveServer, owner: dict[str, str]) -> None:
    with server.client(owner["key"]) as c:
        for path in ("/v1/zoos/zoo_%00x", "/v1/datasets/ds%00", "/v1/jobs/job%0A1", "/v1/spaces/mbv3%00tiny",
                     "/v1/searches/s%00", "/v1/finetunes/f%00"):
            assert_error(c.get(path), 422, "validation_error", "control character")
        for query in ({"kind": "score\x00"}, {"zoo_id": "zoo\x00"}):
            assert_error(c.get("/v1/jobs", params=query), 422, "validation_error", "control character")
        assert_error(c.post("/v1/datasets/builtin", json={"name": "digits\x00"}), 422, "validation_error",
                     "control characters")
        assert_error(c.post("/v1/zoos", json={"dataset_id": "ds_\x00"}), 422, "validation_error", "control characters")
        assert_error(c.post("/v1/keys", json={"name": "ci\x00"}), 422, "validation_error", "control characters")
        upload = c.post("/v1/datasets", files={"file": ("d.npz", b"x", "application/octet-stream")},
                        data={"name": "bad\x00name"})
        assert_error(upload, 400, "invalid_input", "form field 'name'", "control characters")
        assert list((server.settings.data_dir / "uploads").iterdir()) == []  # nothing left behind


def test_odd_values_of_item_6_are_422(server: LiveServer, owner: dict[str, str]) -> None:
    tiny = get_space("mbv3-tiny").to_dict()
    with server.client(owner["key"]) as c:
        assert_error(c.post("/v1/datasets/builtin", json={"name": "digits", "seed": -1}), 422, "validation_error",
                     "seed")
        assert_error(c.post("/v1/datasets/builtin", json={"name": "synthetic", "options": {"num_images": 1_000_000,
                     "image_size": 512}}), 400, "invalid_input", "bytes of pixels")
        for bad in ({"widths": None}, {"widths": ["a"] * 5}, {"use_se": 3}, {"input_size": "x"}):
            r = c.post("/v1/cost", json={"space": tiny | bad, "architectures": ["d11111-e2.2.2.2.2"]})
            assert r.status_code == 422, (bad, r.text)
        deep = tiny | {"name": "deep", "widths": [8] * 50, "strides": [1] * 50, "activations": ["relu"] * 50,
                       "use_se": [True] * 50}
        assert_error(c.post("/v1/cost", json={"space": deep, "architectures": ["d1-e2"]}), 422, "validation_error",
                     "widths")
        wide = tiny | {"name": "wide", "widths": [64] * 12, "strides": [1] * 12, "activations": ["relu"] * 12,
                       "use_se": [True] * 12, "depth_choices": [8], "expand_choices": list(range(1, 17))}
        # 300 architectures of distinct 8-layer blocks: 28,800 layers to cost, past max_cost_layers.
        draw = random.Random(0)
        archs = [{"expand": [[draw.randint(1, 16) for _ in range(8)] for _ in range(12)]} for _ in range(300)]
        started = time.monotonic()
        assert_error(c.post("/v1/cost", json={"space": wide, "architectures": archs}), 422, "invalid_architecture",
                     "max_cost_layers")
        assert time.monotonic() - started < 5
        many = [{"expand": [[2]] * 12}] * 1001
        assert_error(c.post("/v1/cost", json={"space": wide | {"depth_choices": [1]}, "architectures": many}),
                     422, "invalid_architecture", "at most 1000 per request")
        assert_error(c.post("/v1/zoos/z/scores", json={"architectures": ["d11111-e2.2.2.2.2"], "wait": "NaN"}),
                     422, "validation_error", "wait")


def test_label_past_int64_in_an_upload_is_a_400(server: LiveServer, owner: dict[str, str]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.zeros((4, 4, 4), np.uint8), y=np.array([0, 1, 2**64 - 1, 1], dtype=np.uint64))
    with server.client(owner["key"]) as c:
        r = c.post("/v1/datasets", files={"file": ("labels.npz", buffer.getvalue(), "application/octet-stream")})
    assert_error(r, 400, "invalid_input", "label 18446744073709551615", "too large")


def test_json_bodies_past_the_cap_are_413_before_parsing(server: LiveServer, owner: dict[str, str]) -> None:
    body = b'{"space": "mbv3-tiny", "architectures": [' + b'"d11111-e2.2.2.2.2",' * 15000 + b'"d1-e2"]}'
    assert len(body) > 256 * 1024
    with server.client(owner["key"]) as c:
        declared = c.post("/v1/cost", content=body, headers={"Content-Type": "application/json"})
        assert_error(declared, 413, "payload_too_large", "max_json_body_bytes")

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield from (body[i:i + 8192] for i in range(0, len(body), 8192))

        streamed = c.post("/v1/cost", content=chunks(), headers={"Content-Type": "application/json"})
        assert_error(streamed, 413, "payload_too_large")
        # Uploads keep their own, larger cap.
        buffer = io.BytesIO()
        np.savez(buffer, x=np.random.default_rng(0).integers(0, 255, (1200, 16, 16), dtype=np.uint8),
                 y=np.arange(1200) % 2)
        assert len(buffer.getvalue()) > 256 * 1024
        r = c.post("/v1/datasets", files={"file": ("big.npz", buffer.getvalue(), "application/octet-stream")})
        assert r.status_code == 201, r.text


def test_security_headers_and_options(server: LiveServer, owner: dict[str, str]) -> None:
    with server.client(owner["key"]) as c:
        for path in ("/health", "/v1/spaces", "/v1/zoos/nope"):
            r = c.get(path)
            assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
            assert r.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
            assert r.headers.get("cache-control") == ("no-store" if path.startswith("/v1") else None)
        r = c.request("OPTIONS", "/v1/zoos")
        assert_error(r, 405, "method_not_allowed", "OPTIONS is not allowed on /v1/zoos")
        assert {"GET", "HEAD", "POST"} <= set(r.headers["allow"].split(", "))  # every route of the path
        assert {"DELETE", "GET"} <= set(c.request("OPTIONS", "/v1/zoos/zoo_x").headers["allow"].split(", "))


def test_keys_are_listed_rotated_and_revoked_at_once(server: LiveServer, owner: dict[str, str]) -> None:
    _, other_key = server.new_owner("someone-else")
    with server.client(owner["key"]) as c:
        listed = c.get("/v1/keys").json()
        assert len(listed) == 1 and listed[0]["prefix"] == owner["key"][:11] and listed[0]["revoked_at"] is None
        assert "digest" not in listed[0] and owner["key"] not in str(listed)
        new = c.post("/v1/keys", json={"name": "rotated"})
        assert new.status_code == 201 and new.json()["key"].startswith("bz_")
        new_key, new_id_ = new.json()["key"], new.json()["id"]
    with server.client(other_key) as other:
        assert_error(other.post(f"/v1/keys/{new_id_}/revoke"), 404, "not_found")
    with server.client(new_key) as c:
        assert c.get("/v1/spaces").status_code == 200
        revoked = c.post(f"/v1/keys/{new_id_}/revoke")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        assert_error(c.get("/v1/spaces"), 401, "unauthorized", "revoked")
    with server.client(owner["key"]) as c:
        assert c.get("/v1/spaces").status_code == 200  # the other key of the owner still works


def test_revoke_key_command(server: LiveServer, capsys: pytest.CaptureFixture[str]) -> None:
    if not server.settings.is_sqlite:
        pytest.skip("the command reads the data folder's database (SQLite here)")
    _, key = server.new_owner("to-revoke")
    data_dir = str(server.settings.data_dir)
    assert cli_main(["list-keys", "--data-dir", data_dir]) == 0
    assert key[:11] in capsys.readouterr().out
    assert cli_main(["revoke-key", key[:11], "--data-dir", data_dir]) == 0
    assert "Revoked API key" in capsys.readouterr().out
    with server.client(key) as c:
        assert_error(c.get("/v1/spaces"), 401, "unauthorized")
    assert cli_main(["revoke-key", "bz_", "--data-dir", data_dir]) == 2  # ambiguous: refused
    assert "keys match" in capsys.readouterr().err


def test_fifty_waiting_score_requests_do_not_starve_health_or_reads(server: LiveServer,
                                                                     owner: dict[str, str]) -> None:
    if not server.settings.is_sqlite:
        pytest.skip("one database is enough for the threadpool property")
    owner_id, key = server.new_owner("waiter")
    with server.client(key) as c:
        dataset_id = c.post("/v1/datasets/builtin", json={"name": "digits"}).json()["id"]
    zoo_id = ready_zoo(server, owner_id, dataset_id)
    archs = [a.id for a in sample_architectures(get_space("mbv3-tiny"), 50, seed=5)]
    backend = server.runtime.job_queue
    server.runtime.attach_job_queue(HeldQueue())
    try:
        def waiting_score(arch_id: str) -> int:
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
                return client.post(f"/v1/zoos/{zoo_id}/scores", json={"architectures": [arch_id], "wait": 6}).status_code

        with ThreadPoolExecutor(max_workers=50) as pool:
            waiting = [pool.submit(waiting_score, a) for a in archs]
            time.sleep(1.0)  # every request is now waiting on its job
            latencies = []
            with server.client(key, timeout=10) as probe:
                for _ in range(8):
                    for path in ("/health", "/v1/spaces"):
                        started = time.monotonic()
                        assert probe.get(path).status_code == 200
                        latencies.append(time.monotonic() - started)
                    time.sleep(0.3)
            assert all(not f.done() for f in waiting[:10])  # the probes ran while they waited
            assert [f.result() for f in waiting] == [202] * 50
        assert max(latencies) < 1.0, f"slowest probe {max(latencies):.2f} s"
    finally:
        server.runtime.attach_job_queue(backend)


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("limited"), max_queued_jobs_per_owner=3,
                        rate_limit_burst=6, rate_limit_per_s=0.05, max_search_evaluations=100, max_train_epochs=10)
    with LiveServer(settings) as live:
        live.runtime.attach_job_queue(HeldQueue())
        yield live


def test_queued_jobs_past_the_owner_quota_are_429_with_the_reason(limited: LiveServer) -> None:
    owner_id, key = limited.new_owner("busy")
    with limited.client(key) as c:
        dataset_id = c.post("/v1/datasets/builtin", json={"name": "digits"}).json()["id"]
    zoo_id = ready_zoo(limited, owner_id, dataset_id)
    archs = [a.id for a in sample_architectures(get_space("mbv3-tiny"), 4, seed=1)]
    with limited.client(key) as c:
        for arch in archs[:3]:
            assert c.post(f"/v1/zoos/{zoo_id}/scores", json={"architectures": [arch], "wait": 0}).status_code == 202
        r = c.post(f"/v1/zoos/{zoo_id}/scores", json={"architectures": [archs[3]], "wait": 0})
        assert_error(r, 429, "quota_exceeded", "3 jobs queued", "max_queued_jobs_per_owner=3")
        assert r.headers["retry-after"]
    other_id, other = limited.new_owner("idle")
    with limited.client(other) as c:  # a quota is per owner
        other_zoo = ready_zoo(limited, other_id, c.post("/v1/datasets/builtin", json={"name": "digits"}).json()["id"])
        assert c.post(f"/v1/zoos/{other_zoo}/scores", json={"architectures": [archs[3]], "wait": 0}).status_code == 202


def test_expensive_requests_past_the_rate_limit_are_429_with_retry_after(limited: LiveServer) -> None:
    _, key = limited.new_owner("hasty")
    _, calm = limited.new_owner("calm")
    body = {"space": "mbv3-tiny", "architectures": ["d11111-e2.2.2.2.2"]}
    with limited.client(key) as c:
        assert [c.post("/v1/cost", json=body).status_code for _ in range(6)] == [200] * 6
        r = c.post("/v1/cost", json=body)
        assert_error(r, 429, "rate_limited", "rate_limit_per_s")
        assert int(r.headers["retry-after"]) >= 1
        assert c.get("/v1/spaces").status_code == 200  # cheap reads are not limited
    with limited.client(calm) as c:  # per key
        assert c.post("/v1/cost", json=body).status_code == 200


def test_search_and_training_sizes_past_the_limits_are_422_naming_them(limited: LiveServer) -> None:
    _, key = limited.new_owner("ambitious")
    with limited.client(key) as c:
        r = c.post("/v1/zoos/zoo_any/searches", json={"population": 1000, "generations": 1000})
        assert_error(r, 422, "limit_exceeded", "max_search_evaluations", "100")
        dataset_id = c.post("/v1/datasets/builtin", json={"name": "digits"}).json()["id"]
        r = c.post("/v1/zoos", json={"dataset_id": dataset_id, "reference": {"epochs": 1000}})
        assert_error(r, 422, "limit_exceeded", "reference.epochs=1000", "max_train_epochs")


def test_files_left_by_interrupted_work_are_removed_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    old, fresh = time.time() - 2 * 3600, time.time()
    leftovers = {data / "uploads" / "a1b2c3.npz": old, data / "zoos" / "zoo_1" / "blocks" / "s1" / ".tmp-x.safetensors": old,
                 data / "datasets" / ".import-abc" / "images.npy": old}
    kept = {data / "uploads" / "inflight.zip": fresh, data / "zoos" / "zoo_1" / "blocks" / "s1" / "2.safetensors": old,
            data / "zoos" / "zoo_1" / "blocks" / "s1" / ".tmp-now.safetensors": fresh}
    for path, when in {**leftovers, **kept}.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        os.utime(path, (when, when))
    os.utime(data / "datasets" / ".import-abc", (old, old))
    with LiveServer(Settings(data_dir=data)):
        pass
    assert [p for p in leftovers if p.exists()] == [] and not (data / "datasets" / ".import-abc").exists()
    assert all(p.exists() for p in kept)


def test_served_responses_carry_no_server_header(tmp_path: Path) -> None:
    port = free_port()
    env = service_env(data_dir=str(tmp_path / "data"), port=str(port))
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r = wait_until_healthy(f"http://127.0.0.1:{port}", proc)
        assert "server" not in r.headers and r.headers["x-content-type-options"] == "nosniff"
    finally:
        stop_process(proc)
