"""End to end over real HTTP, in the two deployments the service supports.

(a) embedded: SQLite + the local in-process job runner;
(b) distributed: PostgreSQL + Redis + a real ``celery worker`` process.

Each: create a key with the CLI -> import a dataset -> create a lazy ``mbv3-tiny`` zoo (short
recipe) -> poll its job -> score 5 architectures (equal to the library's values on the same
zoo) -> download one architecture's weights and load them into ``blockzoo.build_network``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from service_helpers import ROOT, LiveServer, assert_error, service_env, start_celery_worker, stop_process, wait_for_job

from infra.settings import Settings

pytest_plugins = ["service_fixtures"]

SHORT_RECIPE = {
    "space": "mbv3-tiny",
    "reference": {"epochs": 1, "batch_size": 64},
    "distill": {"batches": 4, "batch_size": 32, "heldout_batches": 1},
    "build": "lazy",
}


@dataclass
class Deployment:
    server: LiveServer
    env: dict[str, str]


@pytest.fixture(scope="module", params=["sqlite-local", "postgres-celery"])
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    data = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite-local":
        env = service_env(data_dir=str(data), job_backend="local")
        with LiveServer(Settings(data_dir=data, job_backend="local", torch_threads=1)) as server:
            yield Deployment(server, env)
        return
    pg_url, redis_url = request.getfixturevalue("pg_url_module"), request.getfixturevalue("redis_url_module")
    settings = Settings(data_dir=data, job_backend="celery", database_url=pg_url, redis_url=redis_url)
    with LiveServer(settings) as server:
        env = service_env(data_dir=str(data), job_backend="celery", database_url=pg_url, redis_url=redis_url,
                          secret_key=server.runtime.secret_key, torch_threads="1")
        worker = start_celery_worker(env, data / "worker.log", via="blockzoo")
        try:
            yield Deployment(server, env)
        finally:
            stop_process(worker)


def _cli_key(env: dict[str, str], owner: str) -> str:
    out = subprocess.run([sys.executable, "-m", "app.cli", "create-key", "--owner", owner], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_import_build_score_download(deployment: Deployment) -> None:
    import torch
    from blockzoo import build_network, cost
    from blockzoo.proxy import score_architectures
    from blockzoo.space import get_space, sample_architectures
    from blockzoo.zoo import BlockZoo
    from safetensors.torch import load

    torch.set_num_threads(1)  # same arithmetic as the jobs (and no over-subscription on small machines)
    server = deployment.server
    key = _cli_key(deployment.env, "e2e")
    with server.client(key) as c:
        r = c.post("/v1/datasets/builtin", json={"name": "digits"})
        assert r.status_code == 201, r.text
        dataset = r.json()

        r = c.post("/v1/zoos", json={"dataset_id": dataset["id"], **SHORT_RECIPE})
        assert r.status_code == 202, r.text
        created = r.json()
        zoo_id = created["zoo"]["id"]
        assert created["zoo"]["state"] == "building" and created["job"]["kind"] == "build_zoo"
        job = wait_for_job(c, created["job"]["id"], timeout_s=300)
        assert job["state"] == "succeeded", job
        zoo = c.get(f"/v1/zoos/{zoo_id}").json()
        assert zoo["state"] == "ready" and zoo["reference_hash"] and zoo["blocks_stored"] == 0  # lazy

        space = get_space("mbv3-tiny")
        archs = [space.smallest, *sample_architectures(space, 4, seed=7)]
        body = {"architectures": [a.to_dict() for a in archs[:2]] + [a.id for a in archs[2:]],
                "metrics": ["kd_loss"], "wait": 120}
        r = c.post(f"/v1/zoos/{zoo_id}/scores", json=body)
        if r.status_code == 202:  # slower than `wait` on a loaded machine: poll, same body
            r_job = wait_for_job(c, r.json()["job"]["id"], timeout_s=300)
            assert r_job["state"] == "succeeded", r_job
            scored = r_job["result"]
        else:
            assert r.status_code == 200, r.text
            scored = r.json()
        assert [i["arch_id"] for i in scored["items"]] == [a.id for a in archs]
        assert c.get(f"/v1/zoos/{zoo_id}").json()["blocks_stored"] > 0
        _assert_block_rows_match_files(server, zoo_id, archs)

        # The library, on the same zoo directory, gives the same values.
        library = score_architectures(BlockZoo.open(server.settings.data_dir / "zoos" / zoo_id), archs)
        for item, expected, arch in zip(scored["items"], library, archs):
            assert item["proxy_accuracy"] == pytest.approx(expected.proxy_accuracy, abs=1e-9)
            assert item["metrics"]["kd_loss"] == pytest.approx(expected.kd_loss, rel=1e-6)
            c_expected = cost(space, arch, in_channels=1, num_classes=10)
            assert (item["macs"], item["params"]) == (c_expected.macs, c_expected.params)

        # Asked again: answered from the score cache, without a job, identically.
        again = c.post(f"/v1/zoos/{zoo_id}/scores", json=body | {"wait": 0})
        assert again.status_code == 200 and again.json()["job_id"] is None
        assert again.json()["items"] == scored["items"]

        arch = archs[3]
        r = c.get(f"/v1/zoos/{zoo_id}/architectures/{arch.id}/weights", params={"wait": 120})
        if r.status_code == 202:
            assert wait_for_job(c, r.json()["job"]["id"], timeout_s=300)["state"] == "succeeded"
            r = c.get(f"/v1/zoos/{zoo_id}/architectures/{arch.id}/weights", params={"wait": 0})
        assert r.status_code == 200, r.text
        assert r.headers["x-blockzoo-arch"] == arch.id
        net = build_network(space, arch, int(r.headers["x-blockzoo-in-channels"]),
                            int(r.headers["x-blockzoo-num-classes"]))
        net.load_state_dict(load(r.content), strict=True)
        net.eval()
        assert net(torch.zeros(2, 1, 16, 16)).shape == (2, 10)


def _assert_block_rows_match_files(server: LiveServer, zoo_id: str, archs: list) -> None:
    """One row per distilled block, each naming its file by path and content hash."""
    import hashlib

    from sqlalchemy import select

    from infra.db.models import Block
    from blockzoo.space import block_code

    with server.runtime.session_factory() as session:
        rows = session.scalars(select(Block).where(Block.zoo_id == zoo_id)).all()
    assert {(r.stage, r.block) for r in rows} == {(m, block_code(e)) for a in archs for m, e in enumerate(a.expand)}
    for row in rows:
        path = server.runtime.storage.resolve(row.path)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row.content_hash
        assert row.metrics["kd_loss"] >= 0


def test_zoo_errors(deployment: Deployment) -> None:
    server = deployment.server
    key = server.new_key("zoo-errors")
    with server.client(key) as c:
        dataset = c.post("/v1/datasets/builtin", json={"name": "synthetic", "options": {"num_images": 300}}).json()
        assert_error(c.post("/v1/zoos", json={"dataset_id": "ds_missing", **SHORT_RECIPE}), 404, "not_found")
        assert_error(c.post("/v1/zoos", json={"dataset_id": dataset["id"], **SHORT_RECIPE, "space": "nope"}),
                     422, "invalid_space", "known spaces")
        assert_error(c.post("/v1/zoos", json={"dataset_id": dataset["id"], **SHORT_RECIPE,
                                              "distill": {"batchez": 3}}), 422, "validation_error", "batchez")
        created = c.post("/v1/zoos", json={"dataset_id": dataset["id"], **SHORT_RECIPE}).json()
        zoo_id = created["zoo"]["id"]
        assert_error(c.delete(f"/v1/datasets/{dataset['id']}"), 409, "conflict", zoo_id)
        assert wait_for_job(c, created["job"]["id"], timeout_s=300)["state"] == "succeeded"

        bad = {"depths": [1, 1, 1, 1, 1], "expand": [[2], [2], [3], [2], [2]]}
        assert_error(c.post(f"/v1/zoos/{zoo_id}/scores", json={"architectures": [bad]}),
                     422, "invalid_architecture", "stage 3", "allowed ratios")
        assert_error(c.get(f"/v1/zoos/{zoo_id}/architectures/d9-e2/weights"), 422, "invalid_architecture")
        assert_error(c.post("/v1/zoos/zoo_missing/scores", json={"architectures": ["d11111-e2.2.2.2.2"]}),
                     404, "not_found")
        assert_error(c.get("/v1/zoos/zoo_missing"), 404, "not_found")

    with server.client(server.new_key("intruder")) as other:
        assert_error(other.get(f"/v1/zoos/{zoo_id}"), 404, "not_found")
        assert_error(other.post(f"/v1/zoos/{zoo_id}/scores", json={"architectures": ["d11111-e2.2.2.2.2"]}),
                     404, "not_found")
        assert_error(other.get(f"/v1/zoos/{zoo_id}/architectures/d11111-e2.2.2.2.2/weights"), 404, "not_found")
        assert_error(other.post("/v1/zoos", json={"dataset_id": dataset["id"], **SHORT_RECIPE}), 404, "not_found")
        assert_error(other.delete(f"/v1/zoos/{zoo_id}"), 404, "not_found")
        assert other.get("/v1/zoos").json()["total"] == 0

    with server.client(key) as c:
        # A recipe the dataset cannot feed is refused at the door, naming the fix.
        assert_error(c.post("/v1/zoos", json={"dataset_id": dataset["id"], **SHORT_RECIPE,
                                              "reference": {"epochs": 0.1}, "distill": {"batches": 500}}),
                     422, "invalid_recipe", "lower batches or batch_size")
        # A build that ends without finishing says why, on the job and on the zoo, and the zoo refuses work.
        failing = c.post("/v1/zoos", json={"dataset_id": dataset["id"], **SHORT_RECIPE,
                                           "reference": {"epochs": 50, "batch_size": 64}}).json()
        assert c.post(f"/v1/jobs/{failing['job']['id']}/cancel").status_code == 200
        job = wait_for_job(c, failing["job"]["id"], timeout_s=120)
        assert job["state"] == "cancelled"
        broken = c.get(f"/v1/zoos/{failing['zoo']['id']}").json()
        assert broken["state"] == "failed" and "cancelled" in broken["error"]
        assert_error(c.post(f"/v1/zoos/{broken['id']}/scores", json={"architectures": ["d11111-e2.2.2.2.2"]}),
                     409, "conflict", "failed to build")
        assert c.delete(f"/v1/zoos/{broken['id']}").status_code == 204

        assert c.delete(f"/v1/zoos/{zoo_id}").status_code == 204
        assert not (server.settings.data_dir / "zoos" / zoo_id).exists()
        assert c.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
