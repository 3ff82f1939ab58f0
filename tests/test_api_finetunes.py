"""Fine-tunes over real HTTP (SQLite + local runner): train, poll, download and load the weights; every 4xx."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from service_helpers import LiveServer, assert_error, wait_for_job

from app.schemas.finetunes import FinetuneRecipeIn
from app.services import jobs as jobs_service
from infra.settings import Settings

pytest_plugins = ["service_fixtures"]

ZOO_RECIPE = {"space": "mbv3-tiny", "reference": {"epochs": 0.3, "batch_size": 64, "flip": False},
              "distill": {"batches": 2, "batch_size": 32, "heldout_batches": 1}, "build": "lazy"}
# A fraction of an epoch: a few SGD steps, then precise BN on a few batches.
FINETUNE_RECIPE = {"epochs": 0.25, "batch_size": 64, "warmup_epochs": 0, "flip": False, "precise_bn_batches": 4}


@dataclass
class Zoo:
    server: LiveServer
    owner_id: str
    key: str
    id: str
    dataset: dict[str, Any]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zoo]:
    data = tmp_path_factory.mktemp("data")
    with LiveServer(Settings(data_dir=data, job_backend="local", local_workers=1, torch_threads=1)) as server:
        owner_id, key = server.new_owner()
        with server.client(key) as c:
            dataset = c.post("/v1/datasets/builtin", json={"name": "digits"}).json()
            created = c.post("/v1/zoos", json={"dataset_id": dataset["id"], **ZOO_RECIPE}).json()
            assert wait_for_job(c, created["job"]["id"], timeout_s=300)["state"] == "succeeded"
        yield Zoo(server, owner_id, key, created["zoo"]["id"], dataset)


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


def test_finetune_recipe_fields_match_the_core() -> None:
    from blockzoo.training import TrainRecipe

    assert set(FinetuneRecipeIn.model_fields) == {f.name for f in dataclasses.fields(TrainRecipe)}


@pytest.mark.slow
def test_finetune_from_the_zoo_trains_and_serves_loadable_weights(zoo: Zoo) -> None:
    import torch
    from blockzoo import build_network, cost
    from blockzoo.data import open_store, to_tensor_split
    from blockzoo.space import get_space, sample_architectures
    from blockzoo.training import TrainRecipe, evaluate
    from safetensors.torch import load
    from sqlalchemy import select

    from infra.db.models import Dataset

    torch.set_num_threads(1)  # the job's arithmetic, so the accuracy below is reproduced exactly
    space = get_space("mbv3-tiny")
    arch = sample_architectures(space, 1, seed=3)[0]
    with zoo.server.client(zoo.key) as c:
        with runner_busy(zoo.server):
            r = c.post(f"/v1/zoos/{zoo.id}/finetunes", json={"architecture": arch.to_dict(), "recipe": FINETUNE_RECIPE})
            assert r.status_code == 202, r.text
            created = r.json()
            assert created["state"] == "queued" and created["job"]["kind"] == "finetune"
            assert created["init"] == "zoo" and created["arch_id"] == arch.id and created["result"] is None
            assert created["recipe"] == FINETUNE_RECIPE
            expected_cost = cost(space, arch, in_channels=1, num_classes=10)
            assert (created["macs"], created["params"]) == (expected_cost.macs, expected_cost.params)
            assert_error(c.get(f"/v1/finetunes/{created['id']}/weights"), 409, "conflict", "queued")

        job = wait_for_job(c, created["job"]["id"], timeout_s=300)
        assert job["state"] == "succeeded", job
        done = c.get(f"/v1/finetunes/{created['id']}").json()
        assert done["state"] == "succeeded" and done["progress"] == 1.0
        result = done["result"]
        assert job["result"]["finetune_id"] == created["id"] and job["result"]["sha256"] == result["sha256"]
        assert 0.0 <= result["initial_test_accuracy"] <= 1.0 and 0.0 <= result["test_accuracy"] <= 1.0
        assert result["steps"] == max(1, round(0.25 * math.ceil(zoo.dataset["num_train"] / 64))) > 0
        assert result["seconds"] > 0 and result["init"] == "zoo"
        assert result["arch_id"] == arch.id and result["architecture"] == arch.to_dict()
        assert result["recipe"] == TrainRecipe(**FINETUNE_RECIPE).to_dict()  # defaults filled in
        assert c.get(f"/v1/zoos/{zoo.id}").json()["blocks_stored"] >= space.num_stages  # its blocks, recorded

        page = c.get("/v1/finetunes", params={"zoo_id": zoo.id, "limit": 1}).json()
        assert page["limit"] == 1 and page["total"] >= 1 and len(page["items"]) == 1
        assert created["id"] in [f["id"] for f in c.get("/v1/finetunes").json()["items"]]

        r = c.get(f"/v1/finetunes/{created['id']}/weights")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["x-blockzoo-space"] == "mbv3-tiny" and r.headers["x-blockzoo-init"] == "zoo"
    assert hashlib.sha256(r.content).hexdigest() == result["sha256"] and len(r.content) == result["bytes"]
    rebuilt = get_space(r.headers["x-blockzoo-space"])
    net = build_network(rebuilt, rebuilt.parse(r.headers["x-blockzoo-arch"]), int(r.headers["x-blockzoo-in-channels"]),
                        int(r.headers["x-blockzoo-num-classes"]))
    net.load_state_dict(load(r.content), strict=True)
    net.eval()
    assert net(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
    # The downloaded network is the one the reported accuracy was measured on.
    with zoo.server.runtime.session_factory() as session:
        store_path = session.scalar(select(Dataset.path).where(Dataset.id == zoo.dataset["id"]))
    x_test, y_test = to_tensor_split(open_store(zoo.server.runtime.storage.resolve(store_path)), "test",
                                     space.input_size)
    assert evaluate(net, x_test, y_test) == pytest.approx(result["test_accuracy"], abs=1e-9)


@pytest.mark.slow
def test_finetune_from_remap_and_scratch(zoo: Zoo) -> None:
    from blockzoo.space import get_space

    space = get_space("mbv3-tiny")
    recipe = FINETUNE_RECIPE | {"epochs": 0.1, "precise_bn_batches": 2}
    with zoo.server.client(zoo.key) as c:
        created = {init: c.post(f"/v1/zoos/{zoo.id}/finetunes",
                                json={"architecture": space.smallest.id, "init": init, "recipe": recipe}).json()
                   for init in ("remap", "scratch")}
        for init, finetune in created.items():
            assert finetune["init"] == init, finetune
            assert wait_for_job(c, finetune["job"]["id"], timeout_s=300)["state"] == "succeeded"
            result = c.get(f"/v1/finetunes/{finetune['id']}").json()["result"]
            assert result["init"] == init and result["arch_id"] == space.smallest.id and result["steps"] > 0
            r = c.get(f"/v1/finetunes/{finetune['id']}/weights")
            assert r.status_code == 200 and r.headers["x-blockzoo-init"] == init
            assert hashlib.sha256(r.content).hexdigest() == result["sha256"]


def test_finetune_errors(zoo: Zoo) -> None:
    server = zoo.server
    url = f"/v1/zoos/{zoo.id}/finetunes"
    with server.client(zoo.key) as c:
        bad = {"depths": [1, 1, 1, 1, 1], "expand": [[2], [2], [3], [2], [2]]}
        assert_error(c.post(url, json={"architecture": bad}), 422, "invalid_architecture", "stage 3", "allowed ratios")
        assert_error(c.post(url, json={"architecture": "d9-e2"}), 422, "invalid_architecture", "d9-e2")
        error = assert_error(c.post(url, json={"architecture": "d11111-e2.2.2.2.2", "recipe": {"epochz": 1}}),
                             422, "validation_error", "unknown recipe field", "epochz", "known")
        for field in ("epochs", "batch_size", "lr", "precise_bn_batches"):
            assert field in error["message"]
        assert_error(c.post(url, json={"architecture": "d11111-e2.2.2.2.2", "recipe": {"epochs": 0}}),
                     422, "validation_error", "recipe.epochs")
        assert_error(c.post(url, json={"architecture": "d11111-e2.2.2.2.2", "init": "pretrained"}),
                     422, "validation_error", "init")
        assert_error(c.post(url, json={}), 422, "validation_error", "architecture")
        assert_error(c.post("/v1/zoos/zoo_missing/finetunes", json={"architecture": "d11111-e2.2.2.2.2"}),
                     404, "not_found")
        assert_error(c.get("/v1/finetunes/ft_missing"), 404, "not_found")
        assert_error(c.get("/v1/finetunes/ft_missing/weights"), 404, "not_found")

        # A zoo that is not ready: waiting for uploaded reference weights, or still building.
        waiting = c.post("/v1/zoos", json={"dataset_id": zoo.dataset["id"], "reference": {"weights_upload": True}})
        waiting_id = waiting.json()["zoo"]["id"]
        assert_error(c.post(f"/v1/zoos/{waiting_id}/finetunes", json={"architecture": "d11111-e2.2.2.2.2"}),
                     409, "conflict", "reference weights")
        with runner_busy(server):
            building = c.post("/v1/zoos", json={"dataset_id": zoo.dataset["id"], **ZOO_RECIPE}).json()
            assert_error(c.post(f"/v1/zoos/{building['zoo']['id']}/finetunes",
                                json={"architecture": "d11111-e2.2.2.2.2"}), 409, "conflict", "still building")
            assert c.post(f"/v1/jobs/{building['job']['id']}/cancel").json()["state"] == "cancelled"
            # The zoo of a build cancelled while queued does not stay "building" forever.
            cancelled_zoo = c.get(f"/v1/zoos/{building['zoo']['id']}").json()
            assert cancelled_zoo["state"] == "failed" and "cancelled" in cancelled_zoo["error"], cancelled_zoo

            # A fine-tune cancelled before it ran has no weights.
            cancelled = c.post(url, json={"architecture": "d11111-e2.2.2.2.2"}).json()
            assert c.post(f"/v1/jobs/{cancelled['job']['id']}/cancel").json()["state"] == "cancelled"
        assert c.get(f"/v1/finetunes/{cancelled['id']}").json()["state"] == "cancelled"
        assert_error(c.get(f"/v1/finetunes/{cancelled['id']}/weights"), 409, "conflict", "cancelled")
        for zoo_id in (waiting_id, building["zoo"]["id"]):
            assert c.delete(f"/v1/zoos/{zoo_id}").status_code == 204

    with server.client(server.new_key("intruder")) as other:
        assert_error(other.post(url, json={"architecture": "d11111-e2.2.2.2.2"}), 404, "not_found")
        assert_error(other.get(f"/v1/finetunes/{cancelled['id']}"), 404, "not_found")
        assert_error(other.get(f"/v1/finetunes/{cancelled['id']}/weights"), 404, "not_found")
        assert other.get("/v1/finetunes").json()["total"] == 0
    with server.client() as anonymous:
        assert_error(anonymous.get("/v1/finetunes"), 401, "unauthorized")
