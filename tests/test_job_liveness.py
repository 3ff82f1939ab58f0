"""Job liveness against real PostgreSQL, Redis and Celery workers (issue 14, failures 1 and 4).

A whole worker killed (main process and child, as an OOM kill or a lost node does) leaves a job
that the reaper re-queues once its heartbeat is stale; a new worker finishes it, distilling
every block once, with the blocks and scores of an uninterrupted run. A cancel of a job whose
worker died takes effect at once. A duplicate delivery runs once. Short heartbeat and reaper
settings keep it quick; the defaults and bounds are in docs/reliability.md.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from service_helpers import ROOT, LiveServer, service_env, wait_for_job

from app.services import jobs as jobs_service
from infra.settings import Settings

pytest_plugins = ["service_fixtures"]

LIVENESS = {"heartbeat_interval_s": 0.5, "heartbeat_timeout_s": 8.0, "reaper_interval_s": 1.0, "job_max_attempts": 3}

# A custom space of 3 stages x 12 candidate blocks: an eager build of it takes seconds.
TINY_SPACE = {
    "name": "tiny-liveness", "input_size": 16, "stem_channels": 8, "widths": [8, 16, 24], "strides": [1, 2, 2],
    "activations": ["relu", "relu", "hswish"], "use_se": [False, True, False], "depth_choices": [1, 2],
    "expand_choices": [2, 4, 6], "kernel_size": 3, "head_channels": 64, "feature_channels": None, "dropout": 0.0,
}
RECIPE = {"reference": {"epochs": 1, "batch_size": 64},
          "distill": {"batches": 8, "batch_size": 32, "heldout_batches": 1}}


class Workers:
    """Real ``celery worker`` processes (prefork: a main process and its children), each its own
    process group so that a test can kill a whole worker at once."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, concurrency: int = 1) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"worker-{len(self.procs)}.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker", "worker", "--pool=prefork",
             f"--concurrency={concurrency}", "--loglevel=INFO", "-Q", "blockzoo",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL to the main process and its children together."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("worker-*.log")))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=20)


@dataclass
class Stack:
    server: LiveServer
    workers: Workers
    key: str
    owner_id: str
    dataset_id: str


@pytest.fixture(scope="module")
def stack(pg_url_module: str, redis_url_module: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("liveness")
    settings = Settings(data_dir=data, job_backend="celery", database_url=pg_url_module, redis_url=redis_url_module,
                        **LIVENESS)
    with LiveServer(settings) as server:
        env = service_env(data_dir=str(data), job_backend="celery", database_url=pg_url_module,
                          redis_url=redis_url_module, secret_key=server.runtime.secret_key, torch_threads="1",
                          **{k: str(v) for k, v in LIVENESS.items()})
        workers = Workers(env, data)
        owner_id, key = server.new_owner("liveness")
        with server.client(key) as c:
            r = c.post("/v1/datasets/builtin", json={"name": "synthetic", "options": {"num_images": 400}})
            assert r.status_code == 201, r.text
        try:
            yield Stack(server, workers, key, owner_id, r.json()["id"])
        finally:
            workers.close()


def _wait(predicate, timeout_s: float, what: str, poll_s: float = 0.05) -> Any:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(poll_s)


def _job_row(stack: Stack, job_id: str):  # noqa: ANN202
    from infra.repositories import jobs as jobs_repo

    with stack.server.runtime.session_factory() as session:
        job = jobs_repo.get(session, job_id)
        session.expunge(job)
        return job


@dataclass
class KilledBuild:
    zoo_id: str
    job: dict[str, Any]
    zoo_dir: Path
    blocks_before_kill: dict[Path, tuple[int, int]]
    building_view: dict[str, Any]
    progress: list[float] = field(default_factory=list)


def _block_files(zoo_dir: Path) -> dict[Path, tuple[int, int]]:
    """Every stored block file: (inode, mtime in ns); a block written again gets a new inode (atomic rename)."""
    return {p.relative_to(zoo_dir): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in sorted((zoo_dir / "blocks").glob("s*/*.safetensors"))}


@pytest.fixture(scope="module")
def spare_worker(stack: Stack) -> subprocess.Popen[bytes]:
    """A worker with two children, so that two deliveries can run at the same time."""
    return stack.workers.start(concurrency=2)


def _reference_bytes() -> bytes:
    """Reference weights for TINY_SPACE (a random init: the build then skips training)."""
    import torch
    from blockzoo import build_network
    from blockzoo.space import SearchSpace
    from safetensors.torch import save

    space = SearchSpace.from_dict(TINY_SPACE)
    torch.manual_seed(0)
    net = build_network(space, space.reference, 1, 10)
    return save({k: v.contiguous() for k, v in net.state_dict().items()})


@pytest.fixture(scope="module")
def killed_build(stack: Stack, request: pytest.FixtureRequest) -> KilledBuild:
    """An eager build whose whole worker is SIGKILLed once blocks are stored; a new worker finishes it."""
    first = stack.workers.start()
    with stack.server.client(stack.key) as c:
        r = c.post("/v1/zoos", json={"dataset_id": stack.dataset_id, "space": TINY_SPACE, "build": "eager",
                                     "reference": {"weights_upload": True}, "distill": RECIPE["distill"]})
        assert r.status_code == 202, r.text
        zoo_id = r.json()["zoo"]["id"]
        r = c.put(f"/v1/zoos/{zoo_id}/reference", files={"file": ("reference.safetensors", _reference_bytes())})
        assert r.status_code == 202, r.text
        job_id = r.json()["job"]["id"]
        zoo_dir = stack.server.settings.data_dir / "zoos" / zoo_id
        progress: list[float] = []
        watching = threading.Event()

        def watch() -> None:  # every progress value a client sees, through the kill and the resume
            with stack.server.client(stack.key) as w:
                while not watching.wait(0.05):
                    try:
                        progress.append(w.get(f"/v1/jobs/{job_id}").json()["progress"])
                    except Exception:  # noqa: BLE001 - the server went away: the test is failing anyway
                        return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _wait(lambda: c.get(f"/v1/jobs/{job_id}").json()["state"] == "running", 60, "the first worker to start it")
        request.getfixturevalue("spare_worker")  # the new worker boots meanwhile; the job is the first one's
        # Kill as soon as the zoo reports stored blocks while it is still building.
        view = _wait(lambda: (z := c.get(f"/v1/zoos/{zoo_id}").json())["blocks_stored"] > 0 and z, 90,
                     "the eager build to store blocks")
        stack.workers.kill(first)
        assert view["state"] == "building", "the build finished before the kill; make it longer"
        before = _block_files(zoo_dir)
        assert 0 < len(before) < 36
        assert c.get(f"/v1/jobs/{job_id}").json()["state"] == "running"  # nobody runs it, the row says running
        try:
            job = wait_for_job(c, job_id, timeout_s=120)
        finally:
            watching.set()
            watcher.join(timeout=10)
    progress.append(job["progress"])  # the watcher may have stopped before its last poll saw the end
    return KilledBuild(zoo_id, job, zoo_dir, before, view, progress)


def test_whole_worker_killed_the_job_finishes_on_a_new_worker_every_block_once(
        stack: Stack, killed_build: KilledBuild) -> None:
    job = killed_build.job
    assert job["state"] == "succeeded" and job["error"] is None, job
    assert job["attempts"] == 2 and "re-queued" not in job["message"]
    took = datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["created_at"])
    assert took.total_seconds() < 120

    after = _block_files(killed_build.zoo_dir)
    assert len(after) == 36  # 3 stages x 12 candidate blocks
    for path, identity in killed_build.blocks_before_kill.items():
        assert after[path] == identity, f"{path} was distilled again after the kill"
    assert job["result"]["blocks_distilled"] == 36 - len(killed_build.blocks_before_kill)

    with stack.server.client(stack.key) as c:
        zoo = c.get(f"/v1/zoos/{killed_build.zoo_id}").json()
    assert zoo["state"] == "ready" and zoo["blocks_stored"] == 36


def test_progress_never_goes_backwards_across_the_kill_and_blocks_show_during_the_build(
        killed_build: KilledBuild) -> None:
    seen = killed_build.progress
    assert len(seen) > 10 and seen[-1] == 1.0
    assert all(later >= earlier for earlier, later in zip(seen, seen[1:])), seen
    assert killed_build.building_view["state"] == "building" and killed_build.building_view["blocks_stored"] > 0


def test_the_resumed_build_equals_an_uninterrupted_one(stack: Stack, killed_build: KilledBuild,
                                                       tmp_path: Path) -> None:
    """The blocks and scores of three architectures: the killed-and-resumed zoo against the same zoo
    distilled in one go (from its reference and KD batches)."""
    import torch
    from blockzoo.proxy import score_architectures
    from blockzoo.space import SearchSpace, sample_architectures
    from blockzoo.zoo import BlockZoo
    from safetensors.torch import load_file

    torch.set_num_threads(1)
    fresh = tmp_path / "uninterrupted"
    fresh.mkdir()
    for name in ("manifest.json", "reference.safetensors", "kd_batches.safetensors"):
        shutil.copy2(killed_build.zoo_dir / name, fresh / name)
    uninterrupted = BlockZoo.open(fresh, device="cpu")
    archs = sample_architectures(SearchSpace.from_dict(TINY_SPACE), 3, seed=3)
    assert uninterrupted.ensure_blocks(archs) > 0
    for stage, expand in {(m, e) for a in archs for m, e in enumerate(a.expand)}:
        path = uninterrupted.block_path(stage, expand).relative_to(fresh)
        resumed, whole = load_file(killed_build.zoo_dir / path), load_file(fresh / path)
        assert resumed.keys() == whole.keys() and all(torch.equal(resumed[k], whole[k]) for k in whole), path

    with stack.server.client(stack.key) as c:
        r = c.post(f"/v1/zoos/{killed_build.zoo_id}/scores", json={"architectures": [a.id for a in archs],
                                                                 "wait": 60})
        assert r.status_code == 200, r.text
    expected = score_architectures(uninterrupted, archs)
    for item, want in zip(r.json()["items"], expected):
        assert item["proxy_accuracy"] == pytest.approx(want.proxy_accuracy, abs=1e-9)


def test_a_duplicate_delivery_runs_once_and_leaves_no_error(stack: Stack, spare_worker: Any) -> None:
    from worker.celery_app import RUN_JOB_TASK, create_celery_app

    with stack.server.runtime.session_factory() as session:
        job = jobs_service.submit(session, owner_id=stack.owner_id, kind="selftest", payload={"steps": 30,
                                                                                               "step_s": 0.05})
        session.commit()
    celery = create_celery_app(stack.server.settings)
    try:
        celery.send_task(RUN_JOB_TASK, args=[job.id])  # the same message twice, as a redelivery does
        with stack.server.client(stack.key) as c:
            done = wait_for_job(c, job.id, timeout_s=60)
        # The second delivery exits without writing: at once while the first runs, or after it finished.
        exited = rf"job {job.id}: (another run holds it|already succeeded); this delivery exits"
        _wait(lambda: re.search(exited, stack.workers.log_text()), 20, "the second delivery to exit")
    finally:
        celery.close()
    assert done["state"] == "succeeded" and done["error"] is None, done
    assert done["attempts"] == 1 and done["result"]["runs"] == 1
    assert _job_row(stack, job.id).updated_at == _job_row(stack, job.id).finished_at  # nothing wrote after


def test_a_paused_run_that_lost_its_job_writes_nothing(stack: Stack, spare_worker: Any) -> None:
    """A worker child stopped (SIGSTOP) long enough to be taken for dead: its job is re-queued and
    finished by the other child; resumed (SIGCONT), the stale run stops without touching the job."""
    with stack.server.runtime.session_factory() as session:
        job = jobs_service.submit(session, owner_id=stack.owner_id, kind="selftest", payload={"steps": 30,
                                                                                               "step_s": 0.1})
        session.commit()
    row = _wait(lambda: (j := _job_row(stack, job.id)).state == "running" and j.runner and j, 60, "the job to start")
    paused = int(row.runner.rsplit("|", 1)[1])
    os.kill(paused, signal.SIGSTOP)
    try:
        _wait(lambda: _job_row(stack, job.id).attempts == 2, 30, "another run to take the job")
    finally:
        os.kill(paused, signal.SIGCONT)
    with stack.server.client(stack.key) as c:
        done = wait_for_job(c, job.id, timeout_s=60)
    assert done["state"] == "succeeded" and done["error"] is None and done["attempts"] == 2, done
    assert done["result"]["pid"] != paused
    noticed = rf"job {job.id}: (stopped; another party owns it now|ended as \w+, but this run no longer owns)"
    _wait(lambda: re.search(noticed, stack.workers.log_text()), 20, "the paused run to notice")
    time.sleep(1.0)  # the stale run has had time to write, if it were going to
    assert _job_row(stack, job.id).state == "succeeded" and _job_row(stack, job.id).error is None


def test_concurrent_duplicate_fine_tunes_write_one_identical_file(stack: Stack, killed_build: KilledBuild,
                                                                  tmp_path: Path) -> None:
    """Two runs of the same fine-tune at once (same output path, shared checkpoint name) both finish
    with the weights a single run writes, and leave no temporary or checkpoint file."""
    import torch
    from blockzoo.data import open_store
    from blockzoo.finetune import finetune
    from blockzoo.files import file_sha256
    from blockzoo.space import SearchSpace, sample_architectures
    from blockzoo.training import TrainRecipe
    from blockzoo.zoo import BlockZoo

    torch.set_num_threads(1)
    data = stack.server.settings.data_dir
    store = open_store(next((data / "datasets").iterdir()))
    zoo = BlockZoo.open(killed_build.zoo_dir, device="cpu")
    arch = sample_architectures(SearchSpace.from_dict(TINY_SPACE), 1, seed=5)[0]
    recipe = TrainRecipe(epochs=3, batch_size=64, seed=0)
    single_path = tmp_path / "single" / "w.safetensors"
    finetune(zoo, arch, store, recipe, out_path=single_path)

    shared = tmp_path / "shared" / "w.safetensors"
    outcomes: list[Any] = []

    def run() -> None:
        try:
            outcomes.append(finetune(BlockZoo.open(killed_build.zoo_dir, device="cpu"), arch, store, recipe,
                                     out_path=shared))
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcomes.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(outcomes) == 2 and not any(isinstance(o, BaseException) for o in outcomes), outcomes
    assert file_sha256(shared) in {o.sha256 for o in outcomes}  # the file is one run's whole write
    assert _content(shared) == _content(single_path)
    assert sorted(p.name for p in shared.parent.iterdir()) == ["w.safetensors"]


def _content(path: Path) -> tuple[dict[str, str], dict[str, bytes]]:
    """Metadata and tensors of a safetensors file (its header orders metadata keys arbitrarily)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        return fh.metadata(), {k: fh.get_tensor(k).numpy().tobytes() for k in fh.keys()}


def test_cancel_of_a_job_whose_worker_died_takes_effect_at_once_and_frees_its_zoo(
        stack: Stack, spare_worker: subprocess.Popen[bytes]) -> None:
    """Last in the module: it kills the spare worker, while its two children run a build and a selftest."""
    with stack.server.client(stack.key) as c:
        r = c.post("/v1/zoos", json={"dataset_id": stack.dataset_id, "space": TINY_SPACE, "build": "lazy",
                                     "reference": {"epochs": 200, "batch_size": 64}, "distill": RECIPE["distill"]})
        assert r.status_code == 202, r.text
        build_id, zoo_id = r.json()["job"]["id"], r.json()["zoo"]["id"]
        with stack.server.runtime.session_factory() as session:
            other_id = jobs_service.submit(session, owner_id=stack.owner_id, kind="selftest",
                                           payload={"steps": 600, "step_s": 0.1}).id
            session.commit()
        for job_id in (build_id, other_id):
            running = _wait(lambda: (j := c.get(f"/v1/jobs/{job_id}").json())["state"] == "running" and j, 60,
                            "both jobs to start")
            assert running["heartbeat_at"] and running["updated_at"] and running["attempts"] == 1
        stack.workers.kill(spare_worker)
        killed_at = time.monotonic()

        # Right after the kill its heartbeat is still fresh: the cancel is recorded, and the reaper ends
        # the job once the heartbeat is older than the cancel bound (3 heartbeat intervals).
        r = c.post(f"/v1/jobs/{other_id}/cancel")
        assert r.status_code == 200 and r.json()["cancel_requested"], r.text
        job = _wait(lambda: (j := c.get(f"/v1/jobs/{other_id}").json())["state"] == "cancelled" and j, 10,
                    "the orphaned job to be cancelled")
        assert time.monotonic() - killed_at < 10 and job["error"] is None and job["finished_at"]

        # Once the heartbeat is stale, a cancel takes effect in the request itself.
        assert c.get(f"/v1/zoos/{zoo_id}").json()["state"] == "building"
        stale = stack.server.settings.cancel_orphan_after_s
        time.sleep(max(0.0, stale + 0.2 - (time.monotonic() - killed_at)))
        r = c.post(f"/v1/jobs/{build_id}/cancel")
        assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
        zoo = c.get(f"/v1/zoos/{zoo_id}").json()
        assert zoo["state"] == "failed" and "cancelled" in zoo["error"]
        assert c.delete(f"/v1/zoos/{zoo_id}").status_code == 204
