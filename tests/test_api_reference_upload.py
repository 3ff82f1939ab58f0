"""Zoos built on uploaded reference weights instead of a trained reference (SQLite + local runner)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from service_helpers import LiveServer, assert_error, wait_for_job

from infra.settings import Settings

pytest_plugins = ["service_fixtures"]

UPLOAD_RECIPE = {"space": "mbv3-tiny", "reference": {"weights_upload": True},
                 "distill": {"batches": 2, "batch_size": 32, "heldout_batches": 1}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(Settings(data_dir=tmp_path_factory.mktemp("data"), torch_threads=1)) as live:
        yield live


def _reference_bytes(num_classes: int) -> bytes:
    import torch
    from blockzoo import build_network, get_space
    from safetensors.torch import save

    space = get_space("mbv3-tiny")
    torch.manual_seed(0)
    net = build_network(space, space.reference, 1, num_classes)
    return save({k: v.contiguous() for k, v in net.state_dict().items()})


def test_uploaded_reference_builds_a_zoo_that_scores(server: LiveServer) -> None:
    from safetensors.torch import load

    key = server.new_key()
    with server.client(key) as c:
        ds = c.post("/v1/datasets/builtin", json={"name": "synthetic", "options": {"num_images": 300}}).json()
        created = c.post("/v1/zoos", json={"dataset_id": ds["id"], **UPLOAD_RECIPE})
        assert created.status_code == 202 and created.json()["job"] is None
        zoo = created.json()["zoo"]
        assert zoo["state"] == "needs_reference"
        assert_error(c.post(f"/v1/zoos/{zoo['id']}/scores", json={"architectures": ["d11111-e2.2.2.2.2"]}),
                     409, "conflict", "PUT /v1/zoos")

        assert_error(c.put(f"/v1/zoos/{zoo['id']}/reference", files={"file": ("ref.safetensors", b"\x00" * 64)}),
                     400, "invalid_input", "safetensors")
        weights = _reference_bytes(ds["num_classes"])
        r = c.put(f"/v1/zoos/{zoo['id']}/reference", files={"file": ("ref.safetensors", weights)})
        assert r.status_code == 202, r.text
        assert wait_for_job(c, r.json()["job"]["id"], timeout_s=300)["state"] == "succeeded"
        ready = c.get(f"/v1/zoos/{zoo['id']}").json()
        assert ready["state"] == "ready" and ready["reference_metrics"] == {"source": "upload"}
        assert_error(c.put(f"/v1/zoos/{zoo['id']}/reference", files={"file": ("ref.safetensors", weights)}),
                     409, "conflict", "ready")
        scored = c.post(f"/v1/zoos/{zoo['id']}/scores", json={"architectures": ["d11111-e2.2.2.2.2"], "wait": 120})
        assert scored.status_code == 200, scored.text
    # The zoo's reference is the uploaded one, bit for bit.
    stored = load((server.settings.data_dir / "zoos" / zoo["id"] / "reference.safetensors").read_bytes())
    assert all((stored[k] == v).all() for k, v in load(weights).items())
    assert server.runtime.storage.uploads_dir.exists() and not list(server.runtime.storage.uploads_dir.iterdir())


def test_wrong_reference_weights_fail_the_build_with_the_reason(server: LiveServer) -> None:
    key = server.new_key()
    with server.client(key) as c:
        ds = c.post("/v1/datasets/builtin", json={"name": "synthetic", "options": {"num_images": 300}}).json()
        zoo = c.post("/v1/zoos", json={"dataset_id": ds["id"], **UPLOAD_RECIPE}).json()["zoo"]
        r = c.put(f"/v1/zoos/{zoo['id']}/reference", content=_reference_bytes(ds["num_classes"] + 3),
                  params={"filename": "ref.safetensors"}, headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 202, r.text
        job = wait_for_job(c, r.json()["job"]["id"], timeout_s=300)
        assert job["state"] == "failed" and "do not fit" in job["error"] and "size mismatch" in job["error"]
        assert c.get(f"/v1/zoos/{zoo['id']}").json()["state"] == "failed"
    with server.client(server.new_key("intruder")) as other:
        assert_error(other.put(f"/v1/zoos/{zoo['id']}/reference", files={"file": ("r", b"x")}), 404, "not_found")
