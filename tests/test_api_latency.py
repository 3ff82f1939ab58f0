"""Latency tables over real HTTP, in both deployments (SQLite + local runner; PostgreSQL + Redis + a
real Celery worker): a table measured in this test run with the `blockzoo latency measure`
command is uploaded, used by scores and by searches whose every pick satisfies `max_latency_ms`
(checked against the table's own prediction) over random budgets; hostile or mismatched tables
are 4xx with the reason; another owner gets 404; a worker measures a table as a job, routed to
the latency queue."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from service_helpers import ROOT, LiveServer, assert_error, service_env, stop_process, wait_for_job

from blockzoo.cost_model import cost
from blockzoo.latency.table import LatencyTable
from blockzoo.space import SearchSpace, get_space
from infra.settings import Settings

pytest_plugins = ["service_fixtures"]

pytestmark = pytest.mark.slow

# The paper's structure at mbv3-tiny's widths, 2 depths x 2 ratios: 30 candidate blocks, cheap to time and distil.
SPACE = SearchSpace.from_dict({**get_space("mbv3-tiny").to_dict(), "name": "tiny-latency-api",
                               "depth_choices": [1, 2], "expand_choices": [2, 4]})
RECIPE = {"space": SPACE.to_dict(), "reference": {"epochs": 0.5, "batch_size": 64},
          "distill": {"batches": 2, "batch_size": 32, "heldout_batches": 1}, "build": "lazy"}
LATENCY_QUEUE = "blockzoo-latency-test"
TABLE_LIMIT = 100_000  # bytes; the server's max_latency_table_bytes in these tests


@pytest.fixture(scope="module")
def table_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A table measured now by the `blockzoo` entry point (app.cli dispatches to the core's command)."""
    folder = tmp_path_factory.mktemp("measured")
    (folder / "space.json").write_text(json.dumps(SPACE.to_dict()))
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "latency", "measure", "--space", str(folder / "space.json"),
         "--in-channels", "1", "--num-classes", "10", "--out", str(folder / "table.json"), "--architectures", "4",
         "--warmup", "1", "--repeats", "2", "--rounds", "1", "--threads", "1", "--no-progress"],
        cwd=ROOT, env=service_env(), capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "measured 30 blocks" in out.stdout and "calibration: scale" in out.stdout
    return folder / "table.json"


@dataclass
class Deployment:
    name: str
    server: LiveServer
    key: str
    zoo_id: str


def _zoo(server: LiveServer, key: str) -> str:
    with server.client(key) as c:
        ds = c.post("/v1/datasets/builtin", json={"name": "synthetic", "options": {"num_images": 400}}).json()
        created = c.post("/v1/zoos", json={"dataset_id": ds["id"], **RECIPE}).json()
        assert wait_for_job(c, created["job"]["id"], timeout_s=300)["state"] == "succeeded"
    return created["zoo"]["id"]


@pytest.fixture(scope="module", params=["sqlite-local", "postgres-celery"])
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    data = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite-local":
        settings = Settings(data_dir=data, job_backend="local", torch_threads=1, max_latency_table_bytes=TABLE_LIMIT)
        with LiveServer(settings) as server:
            key = server.new_key()
            yield Deployment(request.param, server, key, _zoo(server, key))
        return
    pg_url, redis_url = request.getfixturevalue("pg_url_module"), request.getfixturevalue("redis_url_module")
    settings = Settings(data_dir=data, job_backend="celery", database_url=pg_url, redis_url=redis_url,
                        latency_queue=LATENCY_QUEUE, max_latency_table_bytes=TABLE_LIMIT)
    with LiveServer(settings) as server:
        env = service_env(data_dir=str(data), job_backend="celery", database_url=pg_url, redis_url=redis_url,
                          secret_key=server.runtime.secret_key, torch_threads="1")
        # One worker for both queues here; on a real deployment the latency queue's worker sits on the device.
        worker = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--pool", "solo", "--queues", f"blockzoo,{LATENCY_QUEUE}",
             "--", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=open(data / "worker.log", "wb"), stderr=subprocess.STDOUT,
        )
        try:
            key = server.new_key()
            yield Deployment(request.param, server, key, _zoo(server, key))
        finally:
            stop_process(worker)


def _upload(c, body: bytes | str, **params: str):
    return c.post("/v1/latency-tables", content=body, params=params, headers={"Content-Type": "application/json"})


def test_upload_read_list_delete_and_owner_isolation(deployment: Deployment, table_file: Path) -> None:
    server, table = deployment.server, LatencyTable.load(table_file, lazy=False)
    with server.client(deployment.key) as c:
        r = _upload(c, table_file.read_bytes(), name="laptop cpu")
        assert r.status_code == 201, r.text
        row = r.json()
        assert row["state"] == "ready" and row["source"] == "upload" and row["name"] == "laptop cpu"
        assert (row["space_name"], row["in_channels"], row["num_classes"], row["blocks"]) == (SPACE.name, 1, 10, 30)
        assert row["machine"] == table.machine and row["scale"] == table.scale
        assert row["fastest_ms"] == pytest.approx(table.predict(table.fastest()))
        assert row["largest_ms"] == pytest.approx(table.predict(SPACE.reference))
        detail = c.get(f"/v1/latency-tables/{row['id']}", params={"include_table": True}).json()
        assert detail["table"] == table.to_dict()
        assert c.get(f"/v1/latency-tables/{row['id']}").json()["table"] is None
        assert row["id"] in [t["id"] for t in c.get("/v1/latency-tables").json()["items"]]
        stored = server.runtime.storage.latency_table_path(row["id"])
        assert LatencyTable.load(stored).to_dict() == table.to_dict()

    with server.client(server.new_key("intruder")) as other:
        assert_error(other.get(f"/v1/latency-tables/{row['id']}"), 404, "not_found")
        assert_error(other.delete(f"/v1/latency-tables/{row['id']}"), 404, "not_found")
        assert other.get("/v1/latency-tables").json()["total"] == 0
        # another owner's table cannot be named by a search or a score either (the zoo is theirs: 404 first)
        own = _upload(other, table_file.read_bytes()).json()
        assert_error(other.post(f"/v1/zoos/{deployment.zoo_id}/searches",
                                json={"budget": {"max_latency_ms": 100.0}, "latency_table_id": own["id"]}),
                     404, "not_found")
    with server.client(deployment.key) as c:
        assert_error(c.post(f"/v1/zoos/{deployment.zoo_id}/searches",
                            json={"budget": {"max_latency_ms": 100.0}, "latency_table_id": own["id"]}),
                     404, "not_found", own["id"])
        assert_error(c.post(f"/v1/zoos/{deployment.zoo_id}/scores",
                            json={"architectures": [SPACE.smallest.id], "latency_table_id": own["id"]}),
                     404, "not_found")
        assert c.delete(f"/v1/latency-tables/{row['id']}").status_code == 204
        assert_error(c.get(f"/v1/latency-tables/{row['id']}"), 404, "not_found")
        assert not stored.exists()


def _mutate(table_file: Path, change) -> bytes:
    data = json.loads(table_file.read_text())
    change(data)
    return json.dumps(data).encode()


def test_hostile_and_mismatched_tables_are_refused_with_the_reason(deployment: Deployment, table_file: Path) -> None:
    text = table_file.read_text()
    with deployment.server.client(deployment.key) as c:
        cases = [
            (text.replace('"head_ms": ', '"head_ms": NaN, "x": ', 1), "NaN"),
            (_mutate(table_file, lambda d: d["blocks"]["s3"].update({"4": -0.5})), "blocks.s3.4 must be a positive"),
            (_mutate(table_file, lambda d: d["blocks"]["s2"].pop("44")), "lacks 1 of the 30 candidate blocks"),
            (_mutate(table_file, lambda d: d["blocks"]["s2"].update({"8": 0.1})), "'8' is not a candidate block"),
            (_mutate(table_file, lambda d: d.update(version=99)), "unsupported latency table version 99"),
            (_mutate(table_file, lambda d: d["shapes"].update(head=[1, 40, 4, 4])), "shapes do not fit"),
            ("[" * 50_000 + "]" * 50_000, "not valid JSON"),
            ("not json", "not valid JSON"),
        ]
        for body, reason in cases:
            assert_error(_upload(c, body), 422, "invalid_latency_table", reason)
        assert_error(_upload(c, b""), 400, "invalid_input", "empty body")
        huge = b" " * (TABLE_LIMIT + 1)
        assert_error(_upload(c, huge), 413, "payload_too_large", "max_latency_table_bytes")

        # Valid tables that do not fit the zoo: another space, another input shape.
        other_space = _mutate(table_file, lambda d: (d["space"].update(widths=[8, 16, 24, 32, 48]), d.pop("shapes")))
        other_input = _mutate(table_file, lambda d: (d.update(in_channels=3), d.pop("shapes")))
        for body in (other_space, other_input):
            r = _upload(c, body)
            assert r.status_code == 201, r.text
            mismatch = r.json()["id"]
            assert_error(c.post(f"/v1/zoos/{deployment.zoo_id}/searches",
                                json={"budget": {"max_latency_ms": 100.0}, "latency_table_id": mismatch}),
                         422, "latency_table_mismatch", "does not fit zoo")
            assert_error(c.post(f"/v1/zoos/{deployment.zoo_id}/scores",
                                json={"architectures": [SPACE.smallest.id], "latency_table_id": mismatch}),
                         422, "latency_table_mismatch")
        assert_error(c.post(f"/v1/zoos/{deployment.zoo_id}/searches", json={"budget": {"max_latency_ms": 3}}),
                     422, "invalid_budget", "needs latency_table_id")
        assert_error(c.post(f"/v1/zoos/{deployment.zoo_id}/searches",
                            json={"budget": {"max_latency_ms": 3}, "latency_table_id": "lat_missing"}),
                     404, "not_found")


def test_scores_and_searches_under_random_latency_budgets(deployment: Deployment, table_file: Path) -> None:
    server, table = deployment.server, LatencyTable.load(table_file, lazy=False)
    fastest = table.fastest()
    low, high = table.predict(fastest), table.predict(SPACE.reference)
    with server.client(deployment.key) as c:
        table_id = _upload(c, table_file.read_bytes()).json()["id"]
        zoo = f"/v1/zoos/{deployment.zoo_id}"

        r = c.post(f"{zoo}/scores", json={"architectures": [SPACE.smallest.id, SPACE.reference.id],
                                          "latency_table_id": table_id, "wait": 120})
        scored = wait_for_job(c, r.json()["job"]["id"])["result"] if r.status_code == 202 else r.json()
        assert scored["latency_table_id"] == table_id
        for item in scored["items"]:
            assert item["latency_ms"] == pytest.approx(table.predict(item["arch_id"]), rel=1e-12)
        cached = c.post(f"{zoo}/scores", json={"architectures": [SPACE.reference.id], "latency_table_id": table_id})
        assert cached.status_code == 200 and cached.json()["job_id"] is None
        assert cached.json()["items"][0]["latency_ms"] == scored["items"][1]["latency_ms"]
        assert c.post(f"{zoo}/scores", json={"architectures": [SPACE.reference.id]}).json()["items"][0][
            "latency_ms"] is None

        # An impossible budget names the smallest achievable latency: the fastest architecture's.
        error = assert_error(c.post(f"{zoo}/searches", json={"budget": {"max_latency_ms": 0.99 * low},
                                                             "latency_table_id": table_id}),
                             422, "invalid_budget", f"smallest achievable latency_ms = {low:.4g}", fastest.id)
        assert error["details"]["smallest_achievable"]["latency_ms"] == pytest.approx(low)

        rng = random.Random(deployment.name)
        smallest_macs, largest_macs = (cost(SPACE, a, 1, 10).macs for a in (SPACE.smallest, SPACE.reference))
        budgets = [{"max_latency_ms": low * 1.0001}]
        budgets += [{"max_latency_ms": rng.uniform(low, high)} for _ in range(2)]
        budgets += [{"max_latency_ms": rng.uniform(low, high), "max_macs": rng.randint(smallest_macs, largest_macs)}]
        searches = []
        for index, budget in enumerate(budgets):
            r = c.post(f"{zoo}/searches", json={"budget": budget, "latency_table_id": table_id, "top_k": 3,
                                                "population": 3, "generations": 1, "seed": index})
            if r.status_code == 422:  # the two bounds together: no floor architecture meets both
                assert "max_macs" in budget and "no architecture meets every bound" in r.json()["error"]["message"]
                continue
            assert r.status_code == 202, r.text
            searches.append((budget, r.json()))
        assert len(searches) >= 3
        for budget, search in searches:
            assert wait_for_job(c, search["job"]["id"], timeout_s=300)["state"] == "succeeded"
            done = c.get(f"/v1/searches/{search['id']}").json()
            assert done["pareto_cost"] == "latency_ms" and done["pareto"] and done["picks"]
            for point in [*done["picks"], *done["candidates"]]:
                predicted = table.predict(point["arch_id"])
                assert point["latency_ms"] == pytest.approx(predicted, rel=1e-12)
                assert predicted <= budget["max_latency_ms"]
                assert point["macs"] <= budget.get("max_macs", point["macs"])
            front = [p["latency_ms"] for p in done["pareto"]]
            assert front == sorted(front)
        plot = c.get(f"/v1/searches/{searches[-1][1]['id']}/plot.png")
        assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")
        assert c.get(f"/v1/searches/{searches[-1][1]['id']}/plot.png", params={"axis": "macs"}).status_code == 200
        plain = c.post(f"{zoo}/searches", json={"population": 2, "generations": 0}).json()
        assert wait_for_job(c, plain["job"]["id"], timeout_s=300)["state"] == "succeeded"
        assert c.get(f"/v1/searches/{plain['id']}").json()["pareto_cost"] == "macs"
        assert_error(c.get(f"/v1/searches/{plain['id']}/plot.png", params={"axis": "latency_ms"}),
                     422, "validation_error", "no latency table")


def test_a_worker_measures_a_table_on_its_own_device(deployment: Deployment) -> None:
    server = deployment.server
    with server.client(deployment.key) as c:
        r = c.post("/v1/latency-tables/measure", json={
            "space": SPACE.to_dict(), "in_channels": 1, "num_classes": 10, "batch_size": 1, "architectures": 2,
            "timing": {"warmup": 1, "repeats": 1, "rounds": 1}, "name": "worker cpu"})
        assert r.status_code == 202, r.text
        created = r.json()
        assert created["table"]["state"] == "measuring" and created["job"]["kind"] == "measure_latency"
        assert_error(c.delete(f"/v1/latency-tables/{created['table']['id']}"), 409, "conflict", "cancel the job")
        job = wait_for_job(c, created["job"]["id"], timeout_s=300)
        assert job["state"] == "succeeded", job
        row = c.get(f"/v1/latency-tables/{created['table']['id']}", params={"include_table": True}).json()
        assert_error(c.post("/v1/latency-tables/measure", json={"space": "nope", "in_channels": 1, "num_classes": 10}),
                     422, "invalid_space")
        assert_error(c.post("/v1/latency-tables/measure", json={"in_channels": 1, "num_classes": 10,
                                                                "timing": {"rounds": 0}}), 422, "validation_error")
    assert row["state"] == "ready" and row["source"] == "measured" and row["blocks"] == 30
    assert row["device"].split(":")[0] in ("cpu", "cuda") and "threads" in row["machine"]
    assert job["result"]["latency_table_id"] == row["id"]
    table = LatencyTable.from_dict(row["table"], lazy=False)
    table.check_complete()
    assert len(table.calibration.points) == 2 and row["scale"] == table.scale


def test_celery_sends_measuring_jobs_to_the_latency_queue(deployment: Deployment) -> None:
    if deployment.name != "postgres-celery":
        pytest.skip("queues are Celery's")
    import redis

    from app.job_backends import CeleryJobQueue
    from app.services import jobs as jobs_service
    from infra.runtime import Runtime

    # A second API process of the same deployment whose latency jobs go to a queue nobody consumes.
    settings = deployment.server.settings.model_copy(update={"latency_queue": "blockzoo-latency-nobody"})
    runtime = Runtime(settings)
    queue = CeleryJobQueue(runtime)
    runtime.attach_job_queue(queue)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        owner_id, _ = deployment.server.new_owner("routing")
        before = client.llen("blockzoo")
        with runtime.session_factory() as session:
            job = jobs_service.submit(session, owner_id=owner_id, kind="measure_latency", payload={})
            session.commit()  # enqueued now, after the commit
        assert client.llen("blockzoo-latency-nobody") == 1 and client.llen("blockzoo") == before
        assert job.id in client.lpop("blockzoo-latency-nobody").decode()
    finally:
        client.delete("blockzoo-latency-nobody")
        client.close()
        queue.close()
        runtime.close()
