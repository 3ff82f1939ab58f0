"""``blockzoo demo``: a guided tour of a running server's API, printed as a readable table.

Imports Fashion-MNIST (a 5 000-image training subset; ``digits`` when the Debian package is
absent), builds a lazy ``mbv3-tiny`` zoo with a short recipe, scores a few sampled
architectures and picks the best one under a MACs budget. Uses only HTTP (httpx), so it
doubles as an example client.
"""

from __future__ import annotations

import os
import statistics
import sys
from typing import Any

import httpx
from blockzoo.space import get_space, sample_architectures

from app.follow import FollowError, JobProgress, follow_job

DEMO_RECIPE = {
    "space": "mbv3-tiny",
    "reference": {"epochs": 2, "batch_size": 64},
    "distill": {"batches": 10, "batch_size": 64},
    "build": "lazy",
}


class DemoError(Exception):
    pass


def _check(response: httpx.Response, *ok: int) -> dict[str, Any]:
    if response.status_code not in ok:
        try:
            error = response.json()["error"]
            text = f"{error['code']}: {error['message']}"
        except Exception:
            text = response.text[:300]
        raise DemoError(f"{response.request.method} {response.request.url.path} -> {response.status_code} {text}")
    return response.json()


def _poll(client: httpx.Client, job_id: str, label: str) -> dict[str, Any]:
    """Follow the job (its event stream, else polling) with a progress bar; its final view."""
    try:
        with JobProgress(label) as show:
            job = follow_job(client, job_id, show)
    except FollowError as exc:
        raise DemoError(str(exc)) from None
    if job["state"] != "succeeded":
        raise DemoError(f"{label} job {job_id} {job['state']}: {job.get('error') or job.get('message')}")
    return job


def _table(rows: list[dict[str, Any]], best: str | None, budget: int) -> str:
    head = f"{'architecture':<34} {'proxy acc':>9} {'MACs':>12} {'params':>9}  "
    lines = [head, "-" * len(head)]
    for r in sorted(rows, key=lambda r: -(r["proxy_accuracy"] or 0)):
        mark = "<- best under budget" if r["arch_id"] == best else ("   over budget" if r["macs"] > budget else "")
        acc = "n/a" if r["proxy_accuracy"] is None else f"{r['proxy_accuracy']:.4f}"
        lines.append(f"{r['arch_id']:<34} {acc:>9} {r['macs']:>12,} {r['params']:>9,}  {mark}")
    return "\n".join(lines)


def run_demo(url: str, api_key: str | None, dataset: str | None = None, count: int = 5,
             max_macs: int | None = None, seed: int = 0, epochs: float = 2, kd_batches: int = 10,
             population: int = 8, generations: int = 2) -> int:
    api_key = api_key or os.environ.get("BLOCKZOO_API_KEY")
    if not api_key:
        print("no API key: pass --api-key or set BLOCKZOO_API_KEY (`blockzoo create-key` makes one)", file=sys.stderr)
        return 2
    headers = {"Authorization": f"Bearer {api_key}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=180) as client:
            recipe = {**DEMO_RECIPE, "reference": {**DEMO_RECIPE["reference"], "epochs": epochs},
                      "distill": {**DEMO_RECIPE["distill"], "batches": kd_batches}}
            search = {"population": population, "generations": generations}
            return _demo(client, dataset, count, max_macs, seed, recipe, search)
    except httpx.HTTPError as exc:
        print(f"cannot talk to {url}: {exc}; is `blockzoo serve` running?", file=sys.stderr)
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
    return 1


def _demo(client: httpx.Client, dataset: str | None, count: int, max_macs: int | None, seed: int,
          recipe: dict[str, Any], search: dict[str, int]) -> int:
    _check(client.get("/ready"), 200)
    auth = client.get("/v1/spaces")  # the cheapest authenticated request: is the key any good?
    if auth.status_code == 401:
        raise DemoError(f"the API key was rejected (401): {_error_text(auth)}; use a key of this server "
                        "(`blockzoo create-key` with the server's data folder prints one)")
    _check(auth, 200)
    print(f"1. Importing a dataset on {client.base_url}")
    candidates = [dataset] if dataset else ["fashion-mnist", "digits"]
    ds = None
    for name in candidates:
        options = {"train_limit": 5000} if name == "fashion-mnist" else {}
        if name == "digits":
            # Mirrored digits are other digits; 1,497 small images need small batches to train
            # enough steps (the walkthrough's recipe in docs/api.md: ~90 % instead of near chance).
            recipe["reference"] = {**recipe["reference"], "flip": False, "batch_size": 32, "lr": 0.2,
                                   "warmup_epochs": 0.25}
        r = client.post("/v1/datasets/builtin", json={"name": name, "options": options})
        if r.status_code == 201:
            ds = r.json()
            break
        print(f"  {name} unavailable ({_error_text(r)}); trying the next one")
    if ds is None:
        raise DemoError("no built-in dataset could be imported")
    print(f"  {ds['name']}: {ds['num_train']} train / {ds['num_test']} test images, "
          f"{ds['num_classes']} classes, {ds['image_shape']} (id {ds['id']})")

    print("2. Building a lazy mbv3-tiny zoo (trains the reference; blocks are distilled on demand)")
    created = _check(client.post("/v1/zoos", json={"dataset_id": ds["id"], **recipe}), 202)
    _poll(client, created["job"]["id"], "build")
    zoo_id = created["zoo"]["id"]
    metrics = _check(client.get(f"/v1/zoos/{zoo_id}"), 200).get("reference_metrics") or {}
    if metrics.get("test_accuracy") is not None:
        print(f"  reference test accuracy {metrics['test_accuracy']:.1%}")
    if metrics.get("warning"):
        print(f"  warning: {metrics['warning']}")

    space = get_space("mbv3-tiny")
    archs = sample_architectures(space, count, seed=seed)
    print(f"3. Scoring {count} sampled architectures (missing blocks are distilled now)")
    r = client.post(f"/v1/zoos/{zoo_id}/scores", json={"architectures": [a.id for a in archs], "wait": 60})
    body = _check(r, 200, 202)
    if r.status_code == 202:
        body = _poll(client, body["job"]["id"], "score")["result"]
    rows = body["items"]

    budget = max_macs or int(statistics.median(r["macs"] for r in rows))
    print(f"4. Best architecture under {budget:,} MACs")
    best = _best_under_budget(client, zoo_id, rows, budget, seed, search)
    print()
    print(_table(rows, best, budget))
    if best:
        print(f"\nWeights: GET /v1/zoos/{zoo_id}/architectures/{best}/weights")
    return 0


def _best_under_budget(client: httpx.Client, zoo_id: str, rows: list[dict[str, Any]], budget: int,
                       seed: int, options: dict[str, int]) -> str | None:
    """Ask the server to search the whole space (a small evolution) for the best pick under budget."""
    search = _check(client.post(f"/v1/zoos/{zoo_id}/searches", json={
        "budget": {"max_macs": budget}, "top_k": 1, "seed": seed, **options}), 202)
    _poll(client, search["job"]["id"], "search")
    search = _check(client.get(f"/v1/searches/{search['id']}"), 200)
    if not search["picks"]:
        return None
    pick = search["picks"][0]
    print(f"  the search scored {search['evaluated']} architectures and picked {pick['arch_id']} "
          f"(proxy accuracy {pick['score']:.4f}, {pick['macs']:,} MACs)")
    if pick["arch_id"] not in {r["arch_id"] for r in rows}:
        rows.append({**pick, "proxy_accuracy": pick["score"]})
    return pick["arch_id"]


def _error_text(response: httpx.Response) -> str:
    try:
        return response.json()["error"]["message"]
    except Exception:
        return f"HTTP {response.status_code}"
