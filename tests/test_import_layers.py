"""The packages import one way: ``app`` > ``worker`` > ``infra`` > ``blockzoo`` (pyproject's import contracts)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEB_STACK = ("fastapi", "starlette", "python_multipart", "multipart", "uvicorn")


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    assert lint_imports.exists(), "lint-imports not found: pip install import-linter (pyproject's test extras)"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


def test_the_worker_loads_no_web_stack() -> None:
    # What a worker process imports to run any job kind (the contract above checks the source;
    # this checks what actually gets loaded, third-party packages' own imports included).
    code = ("import sys, worker.jobs, worker.runner, worker.tasks; "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({WEB_STACK!r})))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout
