"""Torch threads per job (blockzoo.threads) and what the thread count changes in scores."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from blockzoo.proxy import score_architectures
from blockzoo.space import sample_architectures
from blockzoo.threads import available_cores, default_threads, job_threads
from blockzoo.zoo import BlockZoo
from infra.settings import Settings
from worker.threads import configure_worker_threads, worker_slots


@pytest.mark.parametrize(("cores", "slots", "threads"), [
    (1, 1, 1), (2, 1, 1), (2, 4, 1), (4, 1, 2), (8, 1, 4), (16, 1, 8), (16, 3, 4), (64, 4, 12), (16, 16, 1),
])
def test_each_job_gets_one_share_of_the_cores_and_one_share_is_kept_for_the_rest(cores, slots, threads):
    assert job_threads(cores, slots) == threads


def test_the_rule_refuses_impossible_inputs():
    with pytest.raises(ValueError, match="cores and slots"):
        job_threads(0, 1)
    with pytest.raises(ValueError, match="cores and slots"):
        job_threads(4, 0)


def test_cores_are_those_this_process_may_run_on():
    assert available_cores() == len(os.sched_getaffinity(0))


def test_an_explicit_thread_setting_wins(monkeypatch):
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads(slots=8) == 3
    assert Settings(torch_threads=5).job_threads() == 5
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads(slots=2) == job_threads(available_cores(), 2)
    assert Settings(local_workers=3).job_threads() == job_threads(available_cores(), 3)


def test_a_celery_worker_derives_its_jobs_threads_from_its_pool(monkeypatch):
    assert worker_slots({"pool": "solo", "concurrency": 8}) == 1
    assert worker_slots({"pool": "prefork", "concurrency": 3}) == 3
    assert worker_slots({"pool": "prefork"}) == available_cores()  # Celery's default concurrency
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setenv("BLOCKZOO_TORCH_THREADS", "")  # unset, and restored after the test
    assert configure_worker_threads({"pool": "solo"}) == job_threads(available_cores(), 1)
    assert Settings().torch_threads == job_threads(available_cores(), 1)  # what its children read
    monkeypatch.setenv("BLOCKZOO_TORCH_THREADS", "2")
    assert configure_worker_threads({"pool": "solo"}) == 2  # the user's setting is kept


def test_the_command_line_applies_the_rule_without_importing_torch(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    code = ("import sys; from blockzoo.cli import main; rc = main(['spaces']); "
            "import os; print('torch' in sys.modules, os.environ.get('OMP_NUM_THREADS'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split()[-2:] == ["False", str(job_threads(available_cores(), 1))]


def test_scores_of_a_stored_zoo_do_not_depend_on_the_thread_count(make_zoo):
    """Scoring (BN recalibration, evaluation) is bit-identical at 1 and 2 threads once the blocks
    are on disk; the blocks themselves, distilled at different thread counts, differ by float
    rounding that training amplifies (docs/cli.md, "Threads": the measured tolerance)."""
    zoo = make_zoo()
    archs = sample_architectures(zoo.space, 1, seed=3)
    zoo.ensure_blocks(archs)
    before = torch.get_num_threads()
    try:
        results = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results[threads] = [s.to_dict() for s in score_architectures(BlockZoo.open(zoo.root), archs)]
    finally:
        torch.set_num_threads(before)
    assert results[1] == results[2]
