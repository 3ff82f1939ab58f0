"""The curl walkthrough of docs/api.md, run as written against a live server (SQLite, local jobs).

Like the README's Deploy block (tests/test_deploy.py), only the port is translated; `blockzoo`
on the script's PATH is this checkout's CLI, pointed at the server's data folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_helpers import ROOT, LiveServer, service_env

from infra.settings import Settings

pytest_plugins = ["service_fixtures"]

API_DOC = ROOT / "docs" / "api.md"


def walkthrough_script() -> str:
    """The first ```sh block of docs/api.md's "## Walkthrough (curl)" section."""
    section = re.search(r"^## Walkthrough \(curl\)\n(.*?)^## ", API_DOC.read_text(), re.MULTILINE | re.DOTALL)
    assert section, 'docs/api.md has no "## Walkthrough (curl)" section'
    block = re.search(r"^```sh\n(.*?)^```", section.group(1), re.MULTILINE | re.DOTALL)
    assert block, "the walkthrough has no ```sh block"
    return block.group(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(Settings(data_dir=tmp_path_factory.mktemp("data"), job_backend="local",
                             torch_threads=1)) as live:
        yield live


@pytest.mark.slow
def test_the_api_walkthrough_runs_as_written(server: LiveServer, tmp_path: Path) -> None:
    missing = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the walkthrough needs {', '.join(missing)}")
    script = walkthrough_script()
    assert "--fail" in script and "wait_for" in script and ".result" in script
    script = script.replace("http://127.0.0.1:8000", server.url)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "blockzoo").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m app.cli "$@"\n')
    (bin_dir / "blockzoo").chmod(0o755)
    env = service_env(data_dir=str(server.settings.data_dir))
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "/usr/bin:/bin")])
    prelude = 'set -euo pipefail\ntrap \'echo "walkthrough failed at: $BASH_COMMAND" >&2\' ERR\n'
    run = subprocess.run(["bash", "-c", prelude + script], cwd=tmp_path, env=env, text=True,
                         capture_output=True, timeout=600)
    assert run.returncode == 0, f"exit {run.returncode}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"

    lines = [json.loads(line) for line in run.stdout.splitlines()]
    zoo, scores = lines[0], lines[1:]
    # The documented recipe gives a meaningful reference (10 classes: chance is 10 %).
    assert zoo["state"] == "ready" and zoo["test_accuracy"] > 0.6 and zoo["warning"] is None, zoo
    assert [s["arch_id"] for s in scores] == ["d11111-e2.2.2.2.2", "d42314-e6642.a8.442.6.888a"]
    assert all(0 <= s["proxy_accuracy"] <= 1 and s["kd_loss"] >= 0 and s["macs"] > 0 for s in scores)
    assert "% training: step" in run.stderr and "(eta " in run.stderr  # wait_for showed the build's progress

    from safetensors import safe_open

    with safe_open(str(tmp_path / "arch.safetensors"), "pt") as weights:  # the weights, not a JSON body
        assert json.loads(weights.metadata()["blockzoo_spec"])["arch_id"] == "d42314-e6642.a8.442.6.888a"
    assert not (tmp_path / "answer.tmp").exists()
