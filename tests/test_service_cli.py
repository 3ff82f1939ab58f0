"""The service commands as a person runs them: ``blockzoo serve`` (embedded) and ``blockzoo demo``."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from service_helpers import ROOT, free_port, service_env, stop_process


@dataclass
class Served:
    url: str
    key: str
    output: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("served")
    port = free_port()
    log = data / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--data-dir", str(data / "data")],
            cwd=ROOT, env=service_env(torch_threads="1"), stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        lines = log.read_text().splitlines()
        key = next(line.strip() for line in lines if line.strip().startswith("bz_"))
        yield Served(url, key, log)
    finally:
        stop_process(proc)


def test_serve_prints_the_docs_url_and_a_first_key(served: Served) -> None:
    text = served.output.read_text()
    assert f"{served.url}/docs" in text
    assert "API key" in text
    assert "swagger" in httpx.get(f"{served.url}/docs").text.lower()
    r = httpx.get(f"{served.url}/v1/spaces", headers={"Authorization": f"Bearer {served.key}"})
    assert r.status_code == 200


def test_serve_does_not_import_torch_in_the_api_process(served: Served) -> None:
    # /ready exercises the app; the process must still be torch-free unless a job ran.
    code = (
        "import sys; from app.main import create_app; from app.settings import Settings; "
        "create_app(Settings()); import app.api.zoos, app.services.scores; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=service_env(), check=True, timeout=60)


@pytest.mark.slow
def test_demo_walks_through_the_api_and_prints_a_table(served: Served) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo", "--url", served.url, "--api-key", served.key,
         "--dataset", "digits", "--count", "3", "--epochs", "1", "--kd-batches", "4",
         "--population", "3", "--generations", "1"],
        cwd=ROOT, env=service_env(), capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "digits" in text and "proxy acc" in text and "MACs" in text
    assert "the search scored" in text and "<- best under budget" in text
    table = text[text.index("architecture "):].splitlines()
    # the 3 scored architectures, plus the search's pick when it is another one
    assert sum(1 for line in table if line.startswith("d")) in (3, 4)
