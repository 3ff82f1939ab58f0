"""Load on an embedded server while it builds a zoo: throughput, latency, errors, /health.

    python -m bench.load [--clients 50] [--seconds 60] [--out bench/results/load]

Loopback only and bounded: it starts its own ``blockzoo serve`` (embedded: SQLite and the
in-process job runner, one job thread, one torch thread) on a free 127.0.0.1 port with a
temporary data folder, and stops it at the end. Setup: digits, a lazy mbv3-tiny zoo (small
recipe), the scores of ``--cached`` architectures computed once. Then an eager zoo build starts
(thousands of blocks: it runs for the whole window, in the server process) and ``--clients``
concurrent clients send, for ``--seconds``, a mix of cached score requests, ``/v1/cost`` and
list requests, while a prober (a process of its own) asks ``/health`` every 0.25 s. The rate
limit is off for the run (it would, by design, slow 50 clients sharing one key). Writes ``<out>.json`` and ``<out>.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
RECIPE = {"reference": {"epochs": 1, "batch_size": 64}, "distill": {"batches": 4, "batch_size": 32}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOCKZOO_")}
    env.update({"BLOCKZOO_DATA_DIR": str(data_dir), "BLOCKZOO_PORT": str(port), "BLOCKZOO_HOST": "127.0.0.1",
                "BLOCKZOO_RATE_LIMIT_PER_S": "0", "BLOCKZOO_TORCH_THREADS": "1", "BLOCKZOO_LOG_LEVEL": "warning",
                "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    return env


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _summary(latencies: list[float], errors: int, seconds: float) -> dict:
    return {"requests": len(latencies) + errors, "errors": errors, "per_s": round(len(latencies) / seconds, 1),
            "p50_ms": round(1000 * _percentile(latencies, 0.50), 1), "p99_ms": round(1000 * _percentile(latencies, 0.99), 1),
            "max_ms": round(1000 * max(latencies), 1) if latencies else None}


def _wait_for(client: httpx.Client, job_id: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} still {job['state']} after {timeout_s} s")
        time.sleep(0.5)


def setup(url: str, key: str, cached: int) -> dict:
    """Dataset, a ready lazy zoo with ``cached`` scored architectures; then the eager build starts."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        dataset = c.post("/v1/datasets/builtin", json={"name": "digits"}).json()
        lazy = c.post("/v1/zoos", json={"dataset_id": dataset["id"], **RECIPE}).json()
        _wait_for(c, lazy["job"]["id"], 900)
        archs = c.post("/v1/cost", json={"space": "mbv3-tiny", "architectures": _random_archs(cached)}).json()["items"]
        ids = [a["arch_id"] for a in archs]
        scored = c.post(f"/v1/zoos/{lazy['zoo']['id']}/scores", json={"architectures": ids, "wait": 60})
        if scored.status_code == 202:
            _wait_for(c, scored.json()["job"]["id"], 1800)
        build = c.post("/v1/zoos", json={"dataset_id": dataset["id"], **RECIPE, "build": "eager"}).json()
    return {"zoo_id": lazy["zoo"]["id"], "arch_ids": ids, "build_job_id": build["job"]["id"]}


def _random_archs(count: int) -> list[str]:
    from blockzoo.space import get_space, sample_architectures

    return [a.id for a in sample_architectures(get_space("mbv3-tiny"), count, seed=7)]


async def run_load(url: str, key: str, state: dict, clients: int, seconds: float) -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    ids = state["arch_ids"]
    requests = {
        "scores (cached)": lambda c, r: c.post(f"/v1/zoos/{state['zoo_id']}/scores",
                                               json={"architectures": r.sample(ids, 5), "wait": 0}),
        "cost": lambda c, r: c.post("/v1/cost", json={"space": "mbv3-tiny", "architectures": r.sample(ids, 10)}),
        "list zoos": lambda c, r: c.get("/v1/zoos"),
        "list jobs": lambda c, r: c.get("/v1/jobs", params={"limit": 20}),
        "list datasets": lambda c, r: c.get("/v1/datasets"),
        "spaces": lambda c, r: c.get("/v1/spaces"),
    }
    names = list(requests)
    latencies: dict[str, list[float]] = {name: [] for name in [*names, "health (prober)"]}
    errors: dict[str, int] = {name: 0 for name in latencies}
    statuses: dict[str, int] = {}
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    deadline = time.monotonic() + seconds

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits) as client:
        async def worker(index: int) -> None:
            rng = random.Random(index)
            while time.monotonic() < deadline:
                name = rng.choice(names)
                started = time.monotonic()
                try:
                    response = await requests[name](client, rng)
                    ok = response.status_code == 200
                    statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies[name].append(time.monotonic() - started)
                else:
                    errors[name] += 1

        # The prober is a process of its own: in this one it would wait for the clients' event loop.
        prober = subprocess.Popen([sys.executable, "-m", "bench.load", "--probe", url, str(seconds)],
                                  cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        started = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.monotonic() - started
        probed = json.loads(prober.communicate(timeout=120)[0].strip().splitlines()[-1])
        latencies["health (prober)"], errors["health (prober)"] = probed["latencies"], probed["errors"]
    per_endpoint = {name: _summary(latencies[name], errors[name], elapsed) for name in latencies}
    everything = [v for name in names for v in latencies[name]]
    total = _summary(everything, sum(errors[n] for n in names), elapsed)
    return {"seconds": round(elapsed, 1), "total": total, "endpoints": per_endpoint, "statuses": statuses}


def probe(url: str, seconds: float) -> None:
    """``GET /health`` every 0.25 s for ``seconds``; prints the latencies and errors as JSON."""
    latencies, errors = [], 0
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                ok = client.get("/health").status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.monotonic() - started)
            else:
                errors += 1
            time.sleep(max(0.0, 0.25 - (time.monotonic() - started)))
    print(json.dumps({"latencies": latencies, "errors": errors}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--cached", type=int, default=40, help="architectures scored before the load")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "load")
    parser.add_argument("--probe", nargs=2, metavar=("URL", "SECONDS"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        probe(args.probe[0], float(args.probe[1]))
        return 0
    if not 1 <= args.clients <= 200 or not 1 <= args.seconds <= 600:
        parser.error("bounded: 1-200 clients, 1-600 seconds")

    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        data_dir, port = Path(tmp) / "data", _free_port()
        url = f"http://127.0.0.1:{port}"
        env = _env(data_dir, port)
        key = subprocess.run([sys.executable, "-m", "app.cli", "create-key", "--data-dir", str(data_dir)], env=env,
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start")
                time.sleep(0.3)
            setup_started = time.monotonic()
            state = setup(url, key, args.cached)
            setup_s = time.monotonic() - setup_started
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
                time.sleep(2)  # the build is under way (reference training, then distillation)
                before = c.get(f"/v1/jobs/{state['build_job_id']}").json()
                load_before = os.getloadavg()[0]
                result = asyncio.run(run_load(url, key, state, args.clients, args.seconds))
                load_after = os.getloadavg()[0]
                after = c.get(f"/v1/jobs/{state['build_job_id']}").json()
                c.post(f"/v1/jobs/{state['build_job_id']}/cancel")
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()

    from bench.benchutil import cpu_model

    report = {
        "clients": args.clients, "seconds": args.seconds, "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
        "server": "blockzoo serve (embedded: SQLite, local jobs, 1 job thread, 1 torch thread), rate limit off",
        "setup_s": round(setup_s, 1),
        "machine_load_1min": {"before": round(load_before, 1), "after": round(load_after, 1)},
        "build_during_load": {"job_id": state["build_job_id"], "state_before": before["state"],
                              "progress_before": before["progress"], "state_after": after["state"],
                              "progress_after": after["progress"], "message_after": after["message"]},
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# Load: {args.clients} clients for {args.seconds:g} s while a zoo builds (loopback)", "",
        "Command: `" + " ".join(["python -m bench.load", *(argv if argv is not None else sys.argv[1:])]) + "`", "",
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores (client and server share them). "
        f"Server: {report['server']}. Machine load (1-min average, other work included): {load_before:.1f} "
        f"before the window, {load_after:.1f} after.", "",
        f"An eager mbv3-tiny build ran in the server throughout: {before['state']} at "
        f"{before['progress']:.0%} before the window, {after['state']} at {after['progress']:.0%} after "
        f"({after['message']}).", "",
        "| requests | count | errors | per s | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|---|---|",
    ]
    for name, row in [*result["endpoints"].items(), ("all (clients)", result["total"])]:
        lines.append(f"| {name} | {row['requests']} | {row['errors']} | {row['per_s']} | {row['p50_ms']} | "
                     f"{row['p99_ms']} | {row['max_ms']} |")
    lines += ["", f"Status codes: {result['statuses']}."]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    failed = result["total"]["errors"] + result["endpoints"]["health (prober)"]["errors"]
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
