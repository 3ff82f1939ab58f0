"""The service commands as a person runs them: ``blockzoo serve`` (embedded) and ``blockzoo demo``."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from service_helpers import ROOT, free_port, service_env, stop_process, wait_until_healthy


@dataclass
class Served:
    url: str
    key: str
    output: Path
    torch_after_requests: list[str]  # torch's libraries mapped in the server process, before any job ran


# torch's native libraries (torch/_C*.so, torch/lib/libtorch_cpu.so, libc10.so, ...): mapped
# into a process as soon as it imports torch, whatever imported it.
_TORCH_LIBRARY = re.compile(r"/torch/(_C[.]|lib/)")


def torch_libraries(pid: int | str) -> list[str]:
    """The torch libraries mapped into process ``pid`` (its /proc maps)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return sorted({line.split()[-1] for line in maps.splitlines() if _TORCH_LIBRARY.search(line)})


def _use_the_api_without_jobs(url: str, key: str) -> None:
    """Requests the API answers in-process: docs, probes, spaces, cost, the built-in datasets, latency tables."""
    auth = {"Authorization": f"Bearer {key}"}
    for path in ("/docs", "/openapi.json", "/ready", "/v1/spaces", "/v1/spaces/mbv3-tiny", "/v1/datasets/builtin"):
        assert httpx.get(f"{url}{path}", headers=auth, timeout=60).status_code == 200, path
    r = httpx.post(f"{url}/v1/cost", headers=auth, timeout=60,
                   json={"space": "mbv3-tiny", "architectures": ["d11111-e2.2.2.2.2"], "in_channels": 1, "num_classes": 10})
    assert r.status_code == 200, r.text
    r = httpx.post(f"{url}/v1/datasets/builtin", headers=auth, timeout=120, json={"name": "digits"})
    assert r.status_code == 201, r.text
    # A latency table is checked and summarised (fastest and largest predicted latency) in-process, too.
    from blockzoo.latency.table import LatencyTable
    from blockzoo.space import get_space

    space = get_space("mbv3-tiny")
    table = LatencyTable(space, 1, 10, prefix_ms=0.1, head_ms=0.1,
                         blocks={(m, e): 0.01 * len(e) for m in range(space.num_stages) for e in space.stage_blocks(m)})
    r = httpx.post(f"{url}/v1/latency-tables", headers=auth, timeout=60, content=table.to_json())
    assert r.status_code == 201, r.text
    assert httpx.get(f"{url}/v1/latency-tables/{r.json()['id']}", headers=auth, timeout=60,
                     params={"include_table": True}).status_code == 200


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
        wait_until_healthy(url, proc, log)
        lines = log.read_text().splitlines()
        key = next(line.strip() for line in lines if line.strip().startswith("bz_"))
        _use_the_api_without_jobs(url, key)
        yield Served(url, key, log, torch_libraries(proc.pid))
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
    # The served process itself, after answering every request that needs no job (jobs run
    # in-process with the local backend, and they do load torch).
    assert served.torch_after_requests == [], served.torch_after_requests
    # The check sees torch where it is loaded: in this process once it imports torch.
    import torch  # noqa: F401

    assert torch_libraries("self"), "torch's libraries not found in /proc/self/maps"


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
