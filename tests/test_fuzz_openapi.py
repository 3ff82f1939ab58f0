"""Schemathesis against the API's own OpenAPI document: no 5xx, no answer outside the schema.

A live server (embedded: SQLite, local jobs) with one dataset, so that the dataset routes meet
a real row. Every operation gets the same small, seeded number of generated requests (valid
and invalid ones), with a valid API key; each answer must be a documented status with a
documented content type and a body that matches its schema, and never a 5xx.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import create_app  # noqa: E402
from infra.settings import Settings  # noqa: E402
from service_helpers import LiveServer  # noqa: E402

pytest_plugins = ["service_fixtures"]

# `make test` runs a bounded pass; BLOCKZOO_FUZZ_DEEP=1 adds schemathesis' coverage phase (every
# boundary value of every parameter: minutes) and more examples.
DEEP = os.environ.get("BLOCKZOO_FUZZ_DEEP") == "1"
EXAMPLES_PER_OPERATION = 25 if DEEP else 6
SEED = 20261203
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _fuzz_settings(data_dir: Path) -> Settings:
    # Limits that a fuzzer would trip on purpose are checked by their own tests: off here.
    return Settings(data_dir=data_dir, rate_limit_per_s=0, max_wait_s=0.5, torch_threads=1)


CONFIG = schemathesis.config.SchemathesisConfig.from_dict({
    "seed": SEED,
    "generation": {"max-examples": EXAMPLES_PER_OPERATION, "deterministic": True, "database": "none"},
    "phases": {"coverage": {"enabled": DEEP}, "stateful": {"enabled": False}},
})
SCHEMA = schemathesis.openapi.from_dict(create_app(_fuzz_settings(Path("/nonexistent-schema-only"))).openapi(),
                                        config=CONFIG)


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    with LiveServer(_fuzz_settings(tmp_path_factory.mktemp("fuzz"))) as server:
        key = server.new_key("fuzzer")
        with server.client(key) as client:
            assert client.post("/v1/datasets/builtin", json={"name": "digits"}).status_code == 201
        yield server.url, {"Authorization": f"Bearer {key}"}


@SCHEMA.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_api_answers_every_generated_request_within_its_schema(case, fuzz_target) -> None:
    base_url, auth = fuzz_target
    case.call_and_validate(base_url=base_url, headers=auth, checks=CHECKS, timeout=30)
