"""Validation at the door: what cannot work is a 4xx before any job starts, and the same request
shape is checked the same way on every route (query parameters, body fields, form fields)."""

from __future__ import annotations

import io
import re
import typing
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from service_helpers import LiveServer, assert_error

from app.main import create_app
from app.schemas.scores import Metric
from blockzoo.distill_recipe import DistillRecipe
from blockzoo.pipeline import PROXY_METRICS, ZERO_COST_BASELINES
from infra.settings import Settings

pytest_plugins = ["service_fixtures"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(Settings(data_dir=tmp_path_factory.mktemp("data"), job_backend="local")) as live:
        yield live


@pytest.fixture(scope="module")
def key(server: LiveServer) -> str:
    return server.new_key("door")


def _npz(images: int) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, x=rng.integers(0, 255, (images, 8, 8), dtype=np.uint8), y=np.arange(images) % 2)
    return buf.getvalue()


@pytest.fixture(scope="module")
def small_dataset(server: LiveServer, key: str) -> dict[str, Any]:
    with server.client(key) as c:
        r = c.post("/v1/datasets", files={"file": ("small.npz", _npz(200))})
    assert r.status_code == 201, r.text
    return r.json()


def test_a_recipe_needing_more_images_than_the_dataset_is_refused_at_creation(server: LiveServer, key: str,
                                                                             small_dataset: dict[str, Any]) -> None:
    assert small_dataset["num_train"] == 167  # 200 images, a sixth held out for testing
    with server.client(key) as c:
        before = c.get("/v1/zoos").json()["total"]
        r = c.post("/v1/zoos", json={"dataset_id": small_dataset["id"]})  # the default recipe
        error = assert_error(r, 422, "invalid_recipe", "needs 1408 training images", "has 167",
                             "lower batches or batch_size", small_dataset["id"])
        assert error["details"] == {"field": "distill", "training_images_needed": 1408, "training_images": 167}
        assert c.get("/v1/zoos").json()["total"] == before  # nothing was created, no job started
        # One rule: the build job's own check (KDData.select) says the same.
        assert DistillRecipe().training_images_problem(167) in error["message"]
        fitting = c.post("/v1/zoos", json={"dataset_id": small_dataset["id"], "reference": {"weights_upload": True},
                                           "distill": {"batches": 3, "heldout_batches": 1, "batch_size": 32}})
    assert fitting.status_code == 202 and fitting.json()["zoo"]["state"] == "needs_reference", fitting.text


@pytest.mark.parametrize(("method", "url", "body", "unknown", "accepted"), [
    ("get", "/v1/jobs?state=running", None, "state", "accepted: kind, limit, offset, zoo_id"),
    ("get", "/v1/zoos?limit=5&bogus=1", None, "bogus", "accepted: limit, offset"),
    ("get", "/v1/spaces/mbv3-tiny?verbose=1", None, "verbose", "this route takes no query parameters"),
    ("post", "/v1/cost?fast=1", {"space": "mbv3-tiny", "architectures": ["d11111-e2.2.2.2.2"]}, "fast",
     "this route takes no query parameters"),
    ("get", "/v1/jobs/job_0/events?since=3", None, "since", "this route takes no query parameters"),
])
def test_unknown_query_parameters_are_422_naming_the_accepted_ones(server: LiveServer, key: str, method: str,
                                                                   url: str, body: Any, unknown: str,
                                                                   accepted: str) -> None:
    with server.client(key) as c:
        r = c.request(method, url, json=body)
    error = assert_error(r, 422, "validation_error", f"{unknown}: unknown query parameter", accepted)
    assert error["details"][0]["field"] == unknown


def test_declared_query_parameters_still_work(server: LiveServer, key: str) -> None:
    with server.client(key) as c:
        assert c.get("/v1/jobs?kind=selftest&limit=5&offset=0").status_code == 200
        assert c.get("/v1/zoos?limit=1").status_code == 200


def test_an_unknown_job_kind_is_422_listing_the_known_ones(server: LiveServer, key: str) -> None:
    with server.client(key) as c:
        r = c.get("/v1/jobs?kind=bogus")
    error = assert_error(r, 422, "validation_error", "unknown job kind 'bogus'", "build_zoo", "search")
    assert "score" in error["details"][0]["allowed"]


def test_every_api_route_checks_its_query_parameters(server: LiveServer) -> None:
    spec = server.app.openapi()
    operations = [(method, re.sub(r"{[^}]+}", "x", path)) for path, item in spec["paths"].items() for method in item]
    assert len(operations) > 25
    with server.client() as c:  # the check comes first: before the key, the path and the body
        for method, path in operations:
            r = c.request(method, path, params={"zz_unknown": "1"})
            assert_error(r, 422, "validation_error", "zz_unknown: unknown query parameter")


@pytest.mark.parametrize(("url", "body"), [
    ("/v1/cost", {"space": "mbv3-tiny", "architectures": ["d11111-e2.2.2.2.2"], "colour": "red"}),
    ("/v1/datasets/builtin", {"name": "synthetic", "colour": "red"}),
    ("/v1/zoos", {"dataset_id": "ds_x", "colour": "red"}),
    ("/v1/cost", {"space": "mbv3-tiny", "architectures": [{"expand": [[2], [2], [2], [2], [2]], "colour": 1}]}),
])
def test_unknown_body_fields_are_422(server: LiveServer, key: str, url: str, body: dict[str, Any]) -> None:
    with server.client(key) as c:
        r = c.post(url, json=body)
    assert_error(r, 422, "validation_error", "colour")


def _object_schemas(spec: dict[str, Any], schema: dict[str, Any], seen: set[str]) -> Iterator[tuple[str, dict]]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name in seen:
            return
        seen.add(name)
        schema = spec["components"]["schemas"][name]
        if schema.get("properties"):
            yield name, schema
    for child in (list(schema.get("properties", {}).values()) + schema.get("anyOf", []) + schema.get("allOf", [])
                  + schema.get("oneOf", []) + ([schema["items"]] if isinstance(schema.get("items"), dict) else [])):
        yield from _object_schemas(spec, child, seen)


def test_every_request_body_forbids_unknown_fields(tmp_path) -> None:
    spec = create_app(Settings(data_dir=tmp_path)).openapi()
    checked = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            media = op.get("requestBody", {}).get("content", {}).get("application/json")
            for name, schema in _object_schemas(spec, media["schema"], set()) if media else ():
                assert schema.get("additionalProperties") is False, f"{method.upper()} {path}: {name}"
                checked += 1
    assert checked >= 8


@pytest.mark.parametrize(("files", "fragments"), [
    ({"data": ("digits.npz", b"x" * 5000)}, ["missing field 'file'", "field 'data'", "-F file=@"]),
    ({"name": (None, "mine")}, ["missing field 'file'", "the form has no file"]),
    ({"file": ("a.npz", b"x"), "colour": (None, "red")}, ["unknown form field 'colour'", "'file'", "'name'"]),
])
def test_form_errors_name_the_field(server: LiveServer, key: str, files: dict, fragments: list[str]) -> None:
    with server.client(key) as c:
        r = c.post("/v1/datasets", files=files)
    assert_error(r, 400, "invalid_input", *fragments)
    assert not list((server.settings.data_dir / "uploads").glob("*"))  # the partial file is gone


def test_raw_uploads_take_their_documented_query_parameters(server: LiveServer, key: str) -> None:
    with server.client(key) as c:
        r = c.post("/v1/datasets?filename=tiny.npz&name=tiny&format=npz", content=_npz(60),
                   headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "tiny" and r.json()["format"] == "npz"


def test_cost_items_give_the_architecture_too(server: LiveServer, key: str) -> None:
    arch = {"expand": [[2], [4, 4], [2], [2], [6]]}
    with server.client(key) as c:
        r = c.post("/v1/cost", json={"space": "mbv3-tiny", "architectures": [arch, "d11111-e2.2.2.2.2"]})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items[0]["architecture"] == {"depths": [1, 2, 1, 1, 1], **arch}
    assert items[1]["arch_id"] == "d11111-e2.2.2.2.2" and items[1]["architecture"]["depths"] == [1] * 5


def test_openapi_shows_a_building_zoo_and_one_tag_per_operation(tmp_path) -> None:
    spec = create_app(Settings(data_dir=tmp_path)).openapi()
    created = spec["paths"]["/v1/zoos"]["post"]["responses"]["202"]["content"]["application/json"]["schema"]
    example = spec["components"]["schemas"][created["$ref"].rsplit("/", 1)[1]]["examples"][0]
    assert example["zoo"]["state"] == "building" and example["job"]["state"] == "queued"
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert len(op.get("tags", [])) == 1, (method, path, op.get("tags"))
    assert spec["paths"]["/v1/zoos/{zoo_id}/scores"]["post"]["tags"] == ["scores"]


def test_the_cli_and_the_api_accept_the_same_score_metrics(capsys) -> None:
    from blockzoo.cli import main

    assert set(typing.get_args(Metric)) == set(PROXY_METRICS[1:] + ZERO_COST_BASELINES)
    assert main(["score", "--zoo", "nowhere", "--sample", "1", "--metrics", "naswot,flops"]) == 2
    err = capsys.readouterr().err
    assert "flops: MACs and params are reported with every score" in err and "synflow" in err
