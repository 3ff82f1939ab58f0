"""A zoo's life over real HTTP (SQLite + local runner), on a 30-block space:

an eager build that fails half-way keeps its blocks counted and resumes from them; searches are
listed and deleted; plots and weights open through signed links; the picked architecture is
exported as .pt2 and ONNX that give the zoo model's predictions in a process without BlockZoo;
fine-tunes are deleted with their files. Every endpoint is owner-scoped.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from service_helpers import LiveServer, assert_error, wait_for_job

from blockzoo.space import get_space
from infra.settings import Settings

pytest_plugins = ["service_fixtures"]

SPACE = {**get_space("mbv3-tiny").to_dict(), "name": "tiny-2x2", "depth_choices": [1, 2], "expand_choices": [2, 4]}
BLOCKS_PER_STAGE, STAGES = 6, 5
RECIPE = {"space": SPACE, "reference": {"epochs": 1, "batch_size": 64, "flip": False},
          "distill": {"batches": 2, "batch_size": 16, "heldout_batches": 1}, "build": "eager"}
IMAGE_SIZE = 20  # stored images; the space takes 16x16, so deployable exports resize inside


class FullDisk:
    """Stands in for ``blockzoo.zoo.atomic_save``: the first block of stage 2 waits, then fails."""

    def __init__(self, original: Any) -> None:
        self.original = original
        self.reached, self.release = threading.Event(), threading.Event()

    def __call__(self, tensors: Any, path: Path, metadata: Any = None) -> None:
        if "s2" in Path(path).parts:
            self.reached.set()
            self.release.wait(timeout=300)
            raise OSError(28, "No space left on device")
        self.original(tensors, path, metadata)


def _block_files(zoo_dir: Path) -> dict[str, str]:
    return {p.relative_to(zoo_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(zoo_dir.glob("blocks/s*/*.safetensors"))}


@pytest.fixture(scope="module")
def life(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A server, two owners, a zoo whose eager build failed at stage 2 and was resumed: what was seen."""
    import blockzoo.zoo as zoo_module

    data = tmp_path_factory.mktemp("data")
    seen: dict[str, Any] = {}
    with LiveServer(Settings(data_dir=data, job_backend="local", local_workers=1, torch_threads=1)) as server:
        key, other = server.new_key("alice"), server.new_key("bob")
        with server.client(key) as c:
            ds = c.post("/v1/datasets/builtin", json={"name": "synthetic", "options": {
                "num_images": 400, "image_size": IMAGE_SIZE}}).json()
            full_disk = FullDisk(zoo_module.atomic_save)
            zoo_module.atomic_save = full_disk
            try:
                created = c.post("/v1/zoos", json={"dataset_id": ds["id"], **RECIPE})
                assert created.status_code == 202, created.text
                zoo_id, first_job = created.json()["zoo"]["id"], created.json()["job"]["id"]
                assert full_disk.reached.wait(timeout=300), "the build never reached stage 2"
                seen["during"] = (c.get(f"/v1/zoos/{zoo_id}").json(), c.get(f"/v1/jobs/{first_job}").json())
                full_disk.release.set()
                seen["first_job"] = wait_for_job(c, first_job, timeout_s=300)
            finally:
                zoo_module.atomic_save = full_disk.original
            zoo_dir = data / "zoos" / zoo_id
            seen["failed"] = c.get(f"/v1/zoos/{zoo_id}").json()
            seen["files_before"] = _block_files(zoo_dir)
            seen["other_resume"] = c.post(f"/v1/zoos/{zoo_id}/resume", headers={"Authorization": f"Bearer {other}"})
            resumed = c.post(f"/v1/zoos/{zoo_id}/resume")
            assert resumed.status_code == 202, resumed.text
            seen["resumed"] = resumed.json()
            seen["second_job"] = wait_for_job(c, resumed.json()["job"]["id"], timeout_s=300)
            seen["ready"] = c.get(f"/v1/zoos/{zoo_id}").json()
            seen["files_after"] = _block_files(zoo_dir)
            seen["resume_again"] = c.post(f"/v1/zoos/{zoo_id}/resume")
        yield {"server": server, "key": key, "other": other, "zoo_id": zoo_id, "zoo_dir": zoo_dir,
               "dataset": ds, "seen": seen}


@pytest.fixture(scope="module")
def search(life: dict[str, Any]) -> dict[str, Any]:
    """A finished search of the zoo under a params budget."""
    from blockzoo.cost_model import cost
    from blockzoo.space import SearchSpace

    space = SearchSpace.from_dict(SPACE)
    budget = cost(space, space.smallest, 1, 10).params * 2
    with life["server"].client(life["key"]) as c:
        r = c.post(f"/v1/zoos/{life['zoo_id']}/searches", json={
            "budget": {"max_params": budget}, "top_k": 2, "population": 3, "generations": 1, "seed": 0})
        assert r.status_code == 202, r.text
        assert wait_for_job(c, r.json()["job"]["id"], timeout_s=300)["state"] == "succeeded"
        return c.get(f"/v1/searches/{r.json()['id']}").json()


def test_an_eager_build_counts_blocks_live_and_a_failed_one_resumes_from_what_is_on_disk(life):
    seen = life["seen"]
    during_zoo, during_job = seen["during"]
    assert during_job["state"] == "running" and during_zoo["state"] == "building"
    assert 1 <= during_zoo["blocks_stored"] <= BLOCKS_PER_STAGE  # counted while the build runs

    assert seen["first_job"]["state"] == "failed" and "No space left" in seen["first_job"]["error"]
    failed = seen["failed"]
    assert failed["state"] == "failed" and "No space left" in failed["error"]
    assert failed["blocks_stored"] == len(seen["files_before"]) == BLOCKS_PER_STAGE  # the files on disk count
    assert_error(seen["other_resume"], 404, "not_found")

    resumed = seen["resumed"]
    assert resumed["zoo"]["state"] == "building" and resumed["zoo"]["error"] is None
    assert seen["second_job"]["state"] == "succeeded", seen["second_job"]
    # Only the missing blocks were distilled; the stored ones were kept as they were.
    assert seen["second_job"]["result"]["blocks_distilled"] == (STAGES - 1) * BLOCKS_PER_STAGE
    assert {k: seen["files_after"][k] for k in seen["files_before"]} == seen["files_before"]
    ready = seen["ready"]
    assert ready["state"] == "ready" and ready["blocks_stored"] == STAGES * BLOCKS_PER_STAGE
    # The reference was trained once; its metrics are that training's, without a stale file hash.
    metrics = ready["reference_metrics"]
    assert metrics == failed["reference_metrics"] and "sha256" not in metrics
    assert metrics["train_accuracy"] > 0 and metrics["seconds"] > 0 and metrics["steps"] > 0
    assert json.loads((life["zoo_dir"] / "reference_metrics.json").read_text()) == metrics
    manifest = json.loads((life["zoo_dir"] / "manifest.json").read_text())
    assert ready["reference_hash"] == manifest["reference"]["sha256"]
    assert_error(seen["resume_again"], 409, "conflict", "only a failed or cancelled build resumes")


def test_a_resumed_training_reports_the_whole_run(tmp_path):
    """Seconds before the checkpoint count, and a run resumed after its last step keeps that epoch's accuracy."""
    from blockzoo.progress import Cancelled
    from blockzoo.training import TrainRecipe, train_network

    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8), (torch.arange(64) % 2)
    recipe = TrainRecipe(epochs=1, batch_size=32, warmup_epochs=0, augment=False, flip=False)

    def net() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(144, 2))

    checkpoint = tmp_path / "ckpt.pt"
    with pytest.raises(Cancelled):  # stopped after the last epoch's checkpoint, before the end
        train_network(net(), x, y, recipe, checkpoint=checkpoint, device=torch.device("cpu"), should_stop=lambda: True)
    saved = torch.load(checkpoint, weights_only=True)
    resumed = train_network(net(), x, y, recipe, checkpoint=checkpoint, device=torch.device("cpu"))
    assert resumed.steps == saved["step"] == 2
    assert resumed.train_accuracy == saved["epoch_accuracy"] > 0
    assert resumed.seconds >= saved["seconds"] > 0


def test_searches_are_listed_per_owner_and_deleted(life, search):
    server, key, other = life["server"], life["key"], life["other"]
    with server.client(key) as c:
        listed = c.get("/v1/searches").json()
        assert search["id"] in [s["id"] for s in listed["items"]] and listed["total"] >= 1
        assert all(s["candidates"] is None for s in listed["items"])
        assert c.get("/v1/searches", params={"zoo_id": "zoo_none"}).json()["total"] == 0
    with server.client(other) as c:
        assert c.get("/v1/searches").json() == {"items": [], "total": 0, "limit": 50, "offset": 0}
        assert_error(c.delete(f"/v1/searches/{search['id']}"), 404, "not_found")
    with server.client(key) as c:  # a copy to delete: the plot and export tests use the first
        copy = c.post(f"/v1/zoos/{life['zoo_id']}/searches", json={
            **search["request"], "seed": 1, "population": 2, "generations": 0}).json()
        assert wait_for_job(c, copy["job"]["id"], timeout_s=300)["state"] == "succeeded"
        assert c.delete(f"/v1/searches/{copy['id']}").status_code == 204
        assert_error(c.get(f"/v1/searches/{copy['id']}"), 404, "not_found")
        assert copy["id"] not in [s["id"] for s in c.get("/v1/searches").json()["items"]]


def test_the_plot_uses_the_budgets_axis_and_opens_through_a_signed_link(life, search):
    from app.services import links as links_service
    from app.services.searches import plot_axis
    from infra.db.models import Search

    assert plot_axis(Search(request={"budget": {"max_params": 10}})) == "params"
    assert plot_axis(Search(request={"budget": {"max_macs": 10, "max_params": 10}})) == "macs"
    server, key, other = life["server"], life["key"], life["other"]
    path = f"/v1/searches/{search['id']}/plot.png"
    with server.client(key) as c:
        link = c.post("/v1/links", json={"path": path, "expires_in": 600}).json()
        by_key = {axis: c.get(path, params={"axis": axis}).content for axis in ("macs", "params")}
        assert_error(c.post("/v1/links", json={"path": "/v1/zoos"}), 422, "validation_error", "cannot be signed")
    assert link["url"].startswith(server.url + path + "?") and "sig=" in link["url"]
    opened = httpx.get(link["url"])  # a browser: no Authorization header
    assert opened.status_code == 200 and opened.headers["content-type"] == "image/png"
    assert opened.content == by_key["params"] != by_key["macs"]  # the params budget's own axis by default
    assert_error(httpx.get(link["url"][:-1] + ("0" if link["url"][-1] != "0" else "1")), 401, "unauthorized")
    assert_error(httpx.get(link["url"].replace(path, path.replace(search["id"], "srch_other"))), 401, "unauthorized")
    with server.runtime.session_factory() as session:
        owner = session.get(Search, search["id"]).owner_id
        from infra.repositories import owners as owners_repo

        expired, _ = links_service.make_link(server.runtime.secret_key, owners_repo.get_owner(session, owner), path,
                                             lifetime_s=60, now=time.time() - 120)
    assert_error(httpx.get(server.url + expired), 401, "unauthorized", "expired")
    with server.client(other) as c:  # another owner's link to this plot finds nothing
        foreign = c.post("/v1/links", json={"path": path}).json()
    assert_error(httpx.get(foreign["url"]), 404, "not_found")


def _download(client: httpx.Client, path: str, file_format: str) -> bytes:
    for _ in range(20):
        r = client.get(path, params={"format": file_format, "wait": 60})
        if r.status_code == 200:
            return r.content
        assert r.status_code == 202, r.text
        wait_for_job(client, r.json()["job"]["id"], timeout_s=600)
    raise AssertionError(f"{path} ({file_format}) never became ready")


ISOLATED = """
import importlib.util, json, sys
sys.path.append(sys.argv[1])  # site-packages for torch, numpy and onnxruntime only: no .pth, no BlockZoo
for name in ("blockzoo", "app", "infra", "worker"):
    assert importlib.util.find_spec(name) is None, name + " is importable"
import numpy as np, onnxruntime, torch
images = np.load(sys.argv[2])
extra = {"blockzoo_spec.json": ""}
program = torch.export.load(sys.argv[3], extra_files=extra).module()
with torch.no_grad():
    pt2 = program(torch.from_numpy(images)).numpy()
session = onnxruntime.InferenceSession(sys.argv[4], providers=["CPUExecutionProvider"])
onnx = session.run(["logits"], {"images": images})[0]
np.save(sys.argv[5], np.stack([pt2, onnx]))
print(json.dumps({"pt2_spec": json.loads(extra["blockzoo_spec.json"]),
                  "onnx_spec": json.loads(session.get_modelmeta().custom_metadata_map["blockzoo_spec"])}))
"""


def test_the_picked_architecture_deploys_without_blockzoo_as_pt2_and_onnx(life, search, tmp_path):
    from blockzoo.data import open_store, to_tensor_split
    from blockzoo.export import assemble_for_export
    from blockzoo.training import channels_last
    from blockzoo.zoo import BlockZoo

    server, key = life["server"], life["key"]
    arch_id = search["picks"][0]["arch_id"]
    path = f"/v1/zoos/{life['zoo_id']}/architectures/{arch_id}/weights"
    with server.client(key, timeout=300) as c:
        files = {fmt: _download(c, path, fmt) for fmt in ("pt2", "onnx")}
        link = c.post("/v1/links", json={"path": f"{path}?format=onnx"}).json()
    assert httpx.get(link["url"], timeout=120).content == files["onnx"]
    for fmt, data in files.items():
        (tmp_path / f"model.{fmt}").write_bytes(data)

    # The zoo's model, fed by BlockZoo's own preprocessing of the stored test images.
    store = open_store(next((server.settings.data_dir / "datasets").iterdir()))
    x, _ = to_tensor_split(store, "test", SPACE["input_size"])
    zoo = BlockZoo.open(life["zoo_dir"])
    net = assemble_for_export(zoo, zoo.space.parse(arch_id))
    with torch.no_grad():
        want = net(channels_last(x[:32])).numpy()
    images = np.ascontiguousarray(store.images[store.indices("test")][:32])
    assert images.shape == (32, IMAGE_SIZE, IMAGE_SIZE, 1) and images.dtype == np.uint8
    np.save(tmp_path / "images.npy", images)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = subprocess.run([sys.executable, "-I", "-S", "-c", ISOLATED, sysconfig.get_paths()["purelib"],
                          str(tmp_path / "images.npy"), str(tmp_path / "model.pt2"), str(tmp_path / "model.onnx"),
                          str(tmp_path / "logits.npy")], cwd=elsewhere, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    specs = json.loads(out.stdout.strip().splitlines()[-1])
    pt2, onnx = np.load(tmp_path / "logits.npy")
    for got in (pt2, onnx):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        assert (got.argmax(1) == want.argmax(1)).all()
    for spec in specs.values():
        assert spec["arch_id"] == arch_id and spec["input"]["shape"] == ["batch", IMAGE_SIZE, IMAGE_SIZE, 1]
        assert spec["preprocessing"]["resize"]["method"] == "bilinear"
        assert spec["preprocessing"]["mean"] == pytest.approx(zoo.manifest["normalization"]["mean"])


def test_a_finetune_is_deleted_with_its_weights(life, search):
    server, key, other = life["server"], life["key"], life["other"]
    with server.client(key) as c:
        r = c.post(f"/v1/zoos/{life['zoo_id']}/finetunes", json={
            "architecture": search["picks"][0]["arch_id"], "init": "zoo", "recipe": {"epochs": 0.2, "batch_size": 64}})
        assert r.status_code == 202, r.text
        finetune = r.json()
        assert wait_for_job(c, finetune["job"]["id"], timeout_s=300)["state"] == "succeeded"
        weights = c.post("/v1/links", json={"path": f"/v1/finetunes/{finetune['id']}/weights"}).json()
    assert httpx.get(weights["url"]).status_code == 200  # a signed link opens the weights too
    files = list((life["zoo_dir"] / "finetunes").glob(f"{finetune['id']}*"))
    assert files
    with server.client(other) as c:
        assert_error(c.delete(f"/v1/finetunes/{finetune['id']}"), 404, "not_found")
    with server.client(key) as c:
        assert c.delete(f"/v1/finetunes/{finetune['id']}").status_code == 204
        assert_error(c.get(f"/v1/finetunes/{finetune['id']}"), 404, "not_found")
    assert not any(f.exists() for f in files)
