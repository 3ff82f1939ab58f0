"""The OpenAPI page documents every endpoint with request/response schemas and examples."""

from __future__ import annotations

from typing import Any

import pytest

from app.main import create_app
from infra.settings import Settings

EXPECTED = {
    ("get", "/health"), ("get", "/ready"),
    ("get", "/v1/spaces"), ("get", "/v1/spaces/{name}"), ("post", "/v1/cost"),
    ("post", "/v1/datasets"), ("post", "/v1/datasets/builtin"), ("get", "/v1/datasets/builtin"),
    ("get", "/v1/datasets"), ("get", "/v1/datasets/{dataset_id}"), ("delete", "/v1/datasets/{dataset_id}"),
    ("post", "/v1/zoos"), ("get", "/v1/zoos"), ("get", "/v1/zoos/{zoo_id}"), ("delete", "/v1/zoos/{zoo_id}"),
    ("put", "/v1/zoos/{zoo_id}/reference"), ("post", "/v1/zoos/{zoo_id}/scores"),
    ("get", "/v1/zoos/{zoo_id}/architectures/{arch_id}/weights"),
    ("post", "/v1/zoos/{zoo_id}/searches"), ("get", "/v1/searches/{search_id}"),
    ("get", "/v1/jobs"), ("get", "/v1/jobs/{job_id}"), ("post", "/v1/jobs/{job_id}/cancel"),
    ("get", "/v1/jobs/{job_id}/events"),
    ("get", "/v1/searches/{search_id}/plot.png"),
    ("post", "/v1/zoos/{zoo_id}/finetunes"), ("get", "/v1/finetunes"), ("get", "/v1/finetunes/{finetune_id}"),
    ("get", "/v1/finetunes/{finetune_id}/weights"),
    ("post", "/v1/zoos/{zoo_id}/validations"), ("get", "/v1/validations"), ("get", "/v1/validations/{validation_id}"),
    ("get", "/v1/validations/{validation_id}/plot.png"), ("post", "/v1/validations/{validation_id}/cancel"),
    ("delete", "/v1/validations/{validation_id}"),
    ("post", "/v1/latency-tables"), ("post", "/v1/latency-tables/measure"), ("get", "/v1/latency-tables"),
    ("get", "/v1/latency-tables/{table_id}"), ("delete", "/v1/latency-tables/{table_id}"),
}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return create_app(Settings(data_dir=tmp_path_factory.mktemp("data"))).openapi()


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _has_example(spec: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> bool:
    schema = _resolve(spec, schema)
    if "examples" in schema or "example" in schema:
        return True
    if depth > 3:
        return False
    children = list(schema.get("properties", {}).values()) + schema.get("anyOf", []) + schema.get("allOf", [])
    if "items" in schema:
        children.append(schema["items"])
    return any(_has_example(spec, child, depth + 1) for child in children)


def _operations(spec: dict[str, Any]):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield method, path, op


def test_every_endpoint_is_listed(spec: dict[str, Any]) -> None:
    listed = {(method, path) for method, path, _ in _operations(spec)}
    assert EXPECTED <= listed, f"missing from /docs: {EXPECTED - listed}"


def test_operation_ids_are_readable(spec: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in _operations(spec)]
    assert len(ids) == len(set(ids))
    assert all(i.isidentifier() and "v1" not in i and len(i) < 40 for i in ids), ids


def test_requests_and_responses_have_schemas_and_examples(spec: dict[str, Any]) -> None:
    for method, path, op in _operations(spec):
        where = f"{method.upper()} {path}"
        assert op.get("summary") and op.get("description") is not None, where
        body = op.get("requestBody")
        if body:
            for media in body["content"].values():
                assert "schema" in media, where
                assert _has_example(spec, media["schema"]) or "example" in media, f"{where}: request example"
        for status, response in op["responses"].items():
            content = response.get("content", {}).get("application/json")
            if content is None:
                streams = {"application/octet-stream", "image/png", "text/event-stream"}
                binary = streams & set(response.get("content", {}))
                assert status in ("204",) or binary, where
                continue
            assert "schema" in content, f"{where} {status}"
            schema = _resolve(spec, content["schema"])
            assert schema, f"{where} {status}: empty schema"
            assert _has_example(spec, content["schema"]), f"{where} {status}: response example"


def test_authenticated_endpoints_declare_the_bearer_scheme(spec: dict[str, Any]) -> None:
    for _, path, op in _operations(spec):
        if path.startswith("/v1/"):
            assert op.get("security"), path
            assert "401" in op["responses"], path
