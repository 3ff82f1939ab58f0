"""Validations end to end over real HTTP, in both deployments:

(a) SQLite + the local job runner (two threads sharing one validation);
(b) PostgreSQL + Redis + TWO real ``celery worker`` processes, one of which is SIGKILLed in the
    middle of a training (in its second epoch, after it had finished another training).

A tiny validation (K = 4 architectures, S = 2 seeds, a fraction of an epoch, or two epochs where
a training must have a checkpoint to resume, on a small synthetic dataset) runs to its report,
which is checked against scipy on the stored per-training results and the signals the scores
endpoint gives; every training is done exactly once.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

import numpy as np
import pytest
from scipy import stats
from service_helpers import LiveServer, assert_error, service_env, start_celery_worker, stop_process, wait_for_job

from infra.settings import Settings

pytest_plugins = ["service_fixtures"]

DATASET = {"name": "synthetic", "options": {"num_images": 400, "image_size": 16}, "seed": 0}
ZOO_RECIPE = {"space": "mbv3-tiny", "reference": {"epochs": 0.3, "batch_size": 64, "flip": False},
              "distill": {"batches": 2, "batch_size": 32, "heldout_batches": 1}, "build": "lazy"}
# A fraction of an epoch: what is tested is the bookkeeping, not what the networks learn.
TINY = {"epochs": 0.5, "batch_size": 64, "warmup_epochs": 0, "flip": False}
SIGNALS = ("proxy_accuracy", "heldout_accuracy", "kd_loss", "gradnorm", "snip", "fisher", "synflow", "naswot",
           "l2norm", "macs", "params")


@dataclass
class Deployment:
    name: str
    server: LiveServer
    key: str
    zoo_id: str
    data: Path
    workers: list[Popen[bytes]] = field(default_factory=list)


@pytest.fixture(scope="module", params=["sqlite-local", "postgres-celery"])
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    data = tmp_path_factory.mktemp(request.param)
    workers: list[Popen[bytes]] = []
    if request.param == "sqlite-local":
        settings = Settings(data_dir=data, job_backend="local", local_workers=2, torch_threads=1)
    else:
        pg_url, redis_url = request.getfixturevalue("pg_url_module"), request.getfixturevalue("redis_url_module")
        settings = Settings(data_dir=data, job_backend="celery", database_url=pg_url, redis_url=redis_url)
    with LiveServer(settings) as server:
        if request.param == "postgres-celery":
            env = service_env(data_dir=str(data), job_backend="celery", database_url=settings.database_url,
                              redis_url=settings.redis_url, secret_key=server.runtime.secret_key, torch_threads="1")
            workers = [start_celery_worker(env, data / f"worker{n}.log") for n in range(2)]
        try:
            key = server.new_key("validator")
            with server.client(key) as c:
                dataset = c.post("/v1/datasets/builtin", json=DATASET)
                assert dataset.status_code == 201, dataset.text
                created = c.post("/v1/zoos", json={"dataset_id": dataset.json()["id"], **ZOO_RECIPE}).json()
                assert wait_for_job(c, created["job"]["id"], timeout_s=300)["state"] == "succeeded"
            yield Deployment(request.param, server, key, created["zoo"]["id"], data, workers)
        finally:
            for worker in workers:
                stop_process(worker)


def _wait(c: Any, validation_id: str, timeout_s: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body = c.get(f"/v1/validations/{validation_id}").json()
        if body["state"] in ("succeeded", "failed", "cancelled"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def _training_rows(server: LiveServer, validation_id: str) -> list[Any]:
    from sqlalchemy import select

    from infra.db.models import ValidationTraining

    with server.runtime.session_factory() as session:
        rows = list(session.scalars(select(ValidationTraining).where(ValidationTraining.validation_id == validation_id)))
        session.expunge_all()
        return rows


def _signals_from_scores_endpoint(c: Any, zoo_id: str, arch_ids: list[str]) -> dict[str, dict[str, float]]:
    metrics = [m for m in SIGNALS if m not in ("proxy_accuracy", "macs", "params")]
    r = c.post(f"/v1/zoos/{zoo_id}/scores", json={"architectures": arch_ids, "metrics": metrics, "wait": 60})
    assert r.status_code == 200, r.text  # answered from the rows the validation stored
    assert r.json()["job_id"] is None
    values: dict[str, dict[str, float]] = {m: {} for m in SIGNALS}
    for item in r.json()["items"]:
        for name in SIGNALS:
            values[name][item["arch_id"]] = item[name] if name in item else item["metrics"][name]
    return values


def _check_report_against_scipy(report: dict[str, Any], trainings: list[dict[str, Any]],
                                signals: dict[str, dict[str, float]]) -> None:
    archs = sorted({t["arch_id"] for t in trainings})
    accuracy = {a: np.mean([t["test_accuracy"] for t in trainings if t["arch_id"] == a]) for a in archs}
    y = [accuracy[a] for a in archs]
    for name in SIGNALS:
        sign = -1.0 if name == "kd_loss" else 1.0  # lower KD loss predicts a better architecture
        x = [sign * signals[name][a] for a in archs]
        got = report["signals"][name]["accuracy"]
        rho, tau = stats.spearmanr(x, y).statistic, stats.kendalltau(x, y).statistic
        if math.isnan(rho):
            assert got["spearman"] is None, (name, got)
        else:
            assert got["spearman"] == pytest.approx(rho, abs=1e-4), name
            assert got["kendall"] == pytest.approx(tau, abs=1e-4), name
        assert got["n"] == len(archs)
    by_seed = [{t["arch_id"]: t["test_accuracy"] for t in trainings if t["seed"] == s} for s in (0, 1)]
    single = stats.spearmanr([by_seed[0][a] for a in archs], [by_seed[1][a] for a in archs]).statistic
    got = report["ceiling"]["accuracy"]["single_seed"]["spearman"]
    assert (got is None) if math.isnan(single) else got == pytest.approx(single, abs=1e-4)
    assert report["target_means"]["accuracy"] == pytest.approx(accuracy)


def _check_done_once(deployment: Deployment, validation: dict[str, Any], n: int) -> list[Any]:
    """Every training done, and trained to the end by exactly one run (the count of the rows and
    of the cached results agree)."""
    rows = _training_rows(deployment.server, validation["id"])
    assert len(rows) == n and all(r.state == "done" for r in rows)
    assert [r.trained_count for r in rows] == [1] * n
    cached = list((deployment.data / "zoos" / deployment.zoo_id / "groundtruth" / "cache").glob("*.json"))
    assert len({r.result["key"] for r in rows}) == n and {r.result["key"][:24] for r in rows} <= {p.stem for p in cached}
    return rows


def _kill_a_worker_mid_training(deployment: Deployment, validation_id: str) -> int:
    """SIGKILL the worker process that trains a unit in its second epoch (its first epoch's
    checkpoint is on disk) after finishing another unit; returns its pid."""
    checkpoints = deployment.data / "zoos" / deployment.zoo_id / "groundtruth" / "checkpoints"
    workers = {w.pid: w for w in deployment.workers}
    deadline = time.monotonic() + 180
    while True:
        assert time.monotonic() < deadline, "no worker reached a second training's checkpoint"
        finished = {int(r.trainer.rsplit(":", 1)[1]) for r in _training_rows(deployment.server, validation_id)
                    if r.state == "done" and r.trainer}
        for claim in checkpoints.glob("*.claim"):
            try:
                pid = int(claim.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            if pid in workers and pid in finished and claim.with_suffix(".pt").is_file():
                os.kill(pid, signal.SIGKILL)
                workers[pid].wait(timeout=30)
                return pid
        time.sleep(0.02)


def test_a_validation_reports_what_scipy_computes_on_its_stored_results(deployment: Deployment) -> None:
    celery = deployment.name == "postgres-celery"
    # With Celery, two epochs: the worker killed in a training's second epoch leaves a checkpoint.
    recipe = {**TINY, "epochs": 2} if celery else TINY
    with deployment.server.client(deployment.key) as c:
        r = c.post(f"/v1/zoos/{deployment.zoo_id}/validations", json={"k": 4, "seeds": 2, "recipe": recipe})
        assert r.status_code == 202, r.text
        created = r.json()
        assert created["job"]["kind"] == "validate" and created["trainings_total"] == 8
        assert created["seeds"] == [0, 1] and len(created["architectures"]) == 4
        assert created["recipe"]["epochs"] == recipe["epochs"] and created["recipe"]["lr"] == 0.1  # default filled in
        assert_error(c.get(f"/v1/validations/{created['id']}/plot.png"), 409, "conflict")
        victim = _kill_a_worker_mid_training(deployment, created["id"]) if celery else None

        done = _wait(c, created["id"])
        assert done["state"] == "succeeded", done
        assert done["progress"] == 1.0 and done["trainings_done"] == 8 and done["verdict"]
        job = wait_for_job(c, created["job"]["id"])
        assert job["progress"] == 1.0 and job["result"]["verdict"] == done["verdict"]
        report = done["report"]
        assert report["verdict"] == done["verdict"] and report["n_archs"] == 4 and set(report["signals"]) == set(SIGNALS)
        archs = [a["arch_id"] for a in done["architectures"]]
        signals = _signals_from_scores_endpoint(c, deployment.zoo_id, archs)
        _check_report_against_scipy(report, done["trainings"], signals)
        for name in SIGNALS:
            assert report["signal_values"][name] == pytest.approx(signals[name]), name
        assert {a["arch_id"]: (a["macs"], a["params"]) for a in done["architectures"]} == {
            a: (signals["macs"][a], signals["params"][a]) for a in archs}

        plot = c.get(done["plot_url"])
        assert plot.status_code == 200 and plot.headers["content-type"] == "image/png"
        assert plot.content.startswith(b"\x89PNG")
        listed = c.get("/v1/validations", params={"zoo_id": deployment.zoo_id}).json()
        assert created["id"] in [v["id"] for v in listed["items"]] and listed["items"][0]["report"] is None

    rows = _check_done_once(deployment, done, 8)
    if celery:
        # Both workers trained; the killed one's training was finished by the other, from its checkpoint.
        assert len({r.trainer for r in rows}) == 2 and any(r.trainer.endswith(f":{victim}") for r in rows)
        resumed = [r for r in rows if r.result["resumed_from_step"]]
        assert len(resumed) == 1 and resumed[0].result["resumed_from_step"] > 0
        assert not resumed[0].trainer.endswith(f":{victim}")
        checkpoints = deployment.data / "zoos" / deployment.zoo_id / "groundtruth" / "checkpoints"
        assert not [p for p in checkpoints.glob("*.pt") if p.stem in {r.result["key"][:24] for r in rows}]

    with deployment.server.client(deployment.server.new_key("someone-else")) as other:
        for path in ("", "/plot.png"):
            assert_error(other.get(f"/v1/validations/{created['id']}{path}"), 404, "not_found")
        assert_error(other.post(f"/v1/validations/{created['id']}/cancel"), 404, "not_found")
        assert_error(other.delete(f"/v1/validations/{created['id']}"), 404, "not_found")
        assert other.get("/v1/validations").json()["total"] == 0
        assert_error(other.post(f"/v1/zoos/{deployment.zoo_id}/validations", json={"k": 4}), 404, "not_found")
    with deployment.server.client(deployment.key) as c:
        assert_error(c.post(f"/v1/validations/{created['id']}/cancel"), 409, "conflict", "already finished")
        assert c.delete(f"/v1/validations/{created['id']}").status_code == 204
        assert_error(c.get(f"/v1/validations/{created['id']}"), 404, "not_found")


def test_a_request_the_plan_cannot_satisfy_is_refused_before_any_job(deployment: Deployment) -> None:
    from sqlalchemy import func, select

    from infra.db.models import Job

    def jobs() -> int:
        with deployment.server.runtime.session_factory() as session:
            return session.scalar(select(func.count()).select_from(Job))

    before = jobs()
    url = f"/v1/zoos/{deployment.zoo_id}/validations"
    with deployment.server.client(deployment.key) as c:
        for body, status, code, message in (
            ({"k": 2}, 422, "validation_error", "k"),
            ({"k": 100, "seeds": 3}, 422, "invalid_validation", "at most 200"),
            ({"design": "budget_band"}, 422, "invalid_validation", "needs a target_macs"),
            ({"design": "budget_band", "band": {"target_macs": 10, "tolerance": 0.1}}, 422, "invalid_validation",
             "widen the band"),
            ({"band": {"target_macs": 3e6, "tolerance": 0.1}}, 422, "invalid_validation", "'band' is for design"),
            ({"design": "explicit"}, 422, "invalid_validation", "needs 'architectures'"),
            ({"design": "explicit", "architectures": ["d11111-e2.2.2.2.2", "d11111-e9.2.2.2.2", "x"]}, 422,
             "invalid_architecture", "architectures"),
            ({"architectures": ["d11111-e2.2.2.2.2"]}, 422, "invalid_validation", "for design 'explicit'"),
            ({"recipe": {"epoch": 1}}, 422, "validation_error", "epoch"),
            ({"recipe": {"epochs": 0}}, 422, "validation_error", "epochs"),
        ):
            assert_error(c.post(url, json=body), status, code, message)
        assert_error(c.post("/v1/zoos/zoo_00000000000000000000/validations", json={}), 404, "not_found")
    assert jobs() == before


def test_a_cancelled_validation_stops_its_trainings_and_can_then_be_deleted(deployment: Deployment) -> None:
    if deployment.name != "sqlite-local":
        pytest.skip("the job backend plays no part in a cancel; once is enough")
    with deployment.server.client(deployment.key) as c:
        created = c.post(f"/v1/zoos/{deployment.zoo_id}/validations",
                         json={"k": 3, "seeds": 1, "arch_seed": 2, "recipe": {**TINY, "epochs": 1}}).json()
        cancelled = c.post(f"/v1/validations/{created['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        jobs = [t["job_id"] for t in c.get(f"/v1/validations/{created['id']}").json()["trainings"]]
        for job_id in [created["job"]["id"], *jobs]:
            assert wait_for_job(c, job_id)["state"] in ("cancelled", "succeeded")
        assert wait_for_job(c, created["job"]["id"])["state"] == "cancelled"
        assert c.get(f"/v1/validations/{created['id']}").json()["state"] == "cancelled"
        assert_error(c.get(f"/v1/validations/{created['id']}/plot.png"), 409, "conflict", "cancelled")
        assert c.delete(f"/v1/validations/{created['id']}").status_code == 204
