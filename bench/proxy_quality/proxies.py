"""The proxies stage: every signal of Table 1 computed on a protocol's architectures, each
finished configuration cached in ``bench/results/cache/proxy_quality/<protocol>/proxies.json``."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import replace
from datetime import datetime, timezone

import torch

from blockzoo.distill import DistillRecipe
from blockzoo.progress import Cancelled
from blockzoo.proxy import recalibrate_batchnorm, score_architectures
from blockzoo.remap import remap_network
from blockzoo.validation.groundtruth import write_json_atomic
from blockzoo.zerocost import score_zero_cost
from blockzoo.zoo import BlockZoo

from .protocols import PROXY_GROUPS, TUNING_VARIANTS, ZERO_COST
from .workspace import Bench, log


def zoo_proxy(bench: Bench, name: str, recipe: DistillRecipe, recalibrate: bool = True) -> None:
    config = {"kind": "zoo", "recipe": recipe.to_dict(), "recalibrate": recalibrate}
    if bench.cached_proxy(name, config) is not None:
        return
    if bench.should_stop():
        raise Cancelled("budget reached")
    zoo = bench.zoo(recipe)
    log(f"{name}: distilling the blocks of {len(bench.archs)} architectures (T={recipe.batches}, init={recipe.init})")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    missing_before = sum(len(v) for v in zoo.missing_blocks(bench.archs).values())
    zoo.ensure_blocks(bench.archs, should_stop=bench.should_stop)
    distill_wall, distill_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    # Scoring cost on a freshly opened zoo whose blocks are all stored (blocks read from disk).
    zoo = BlockZoo.open(zoo.root, device=bench.device)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    scores = score_architectures(zoo, bench.archs, recalibrate=recalibrate)
    score_wall, score_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    # Cost of one architecture alone (no prefix sharing with others): the first 3, averaged;
    # measured for the main recipe only (the other configurations cost the same per batch).
    single = []
    for arch in (bench.archs[:3] if name == "blockzoo" else []):
        fresh = BlockZoo.open(zoo.root, device=bench.device)
        w0 = time.perf_counter()
        score_architectures(fresh, [arch], recalibrate=recalibrate)
        single.append(time.perf_counter() - w0)
    bench.save_proxy(name, {
        "config_key": bench.config_key(config), "config": config,
        "values": {s.arch_id: s.proxy_accuracy for s in scores},
        "heldout": {s.arch_id: s.heldout_accuracy for s in scores},
        "kd_loss": {s.arch_id: s.kd_loss for s in scores},
        "blocks_distilled": missing_before, "distill_seconds": distill_wall, "distill_cpu_seconds": distill_cpu,
        "score_seconds_per_arch": score_wall / len(bench.archs), "score_cpu_seconds_per_arch": score_cpu / len(bench.archs),
        "score_seconds_single_arch": sum(single) / len(single) if single else float("nan"),
        "load_1min": os.getloadavg()[0], "threads": torch.get_num_threads(), "device": str(bench.device),
    })
    log(f"{name}: done (distill {distill_wall:.0f} s for {missing_before} blocks, score {score_wall / len(bench.archs):.2f} s/arch)")


def measure_cpu_cost(bench: Bench, threads: int) -> None:
    """The BlockZoo proxy's cost on this machine's CPU with the zoo holding every block (the
    issue's ≤ 2 s target), stored next to the proxy values, which may come from a GPU run."""
    entry = bench.proxies().get("blockzoo")
    if entry is None:
        raise SystemExit("no blockzoo proxy yet: run --stage proxies first")
    torch.set_num_threads(threads)
    zoo = BlockZoo.open(bench.zoo_root(bench.p.distill), device="cpu")
    missing = sum(len(v) for v in zoo.missing_blocks(bench.archs).values())
    if missing:
        raise SystemExit(f"the zoo lacks {missing} blocks of these architectures; distil them first")
    load0 = os.getloadavg()[0]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    scores = score_architectures(zoo, bench.archs)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    single = []
    for arch in bench.archs[:5]:
        fresh = BlockZoo.open(zoo.root, device="cpu")
        w0 = time.perf_counter()
        score_architectures(fresh, [arch])
        single.append(time.perf_counter() - w0)
    drift = max(abs(s.proxy_accuracy - entry["values"][s.arch_id]) for s in scores)
    entry = {**entry, "cpu_cost": {
        "score_seconds_per_arch": wall / len(bench.archs), "score_cpu_seconds_per_arch": cpu / len(bench.archs),
        "score_seconds_single_arch": sum(single) / len(single), "threads": threads,
        "load_1min_before": load0, "load_1min_after": os.getloadavg()[0],
        "max_abs_difference_to_stored_values": drift, "cpu_count": os.cpu_count(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }}
    bench.save_proxy("blockzoo", entry)
    log(f"blockzoo proxy on the CPU: {wall / len(bench.archs):.2f} s/arch in one call, "
        f"{sum(single) / len(single):.2f} s alone ({threads} threads, load {load0:.1f}); "
        f"max |difference| to the stored values {drift:.4f}")


def pr_only(bench: Bench, recalibrate: bool) -> None:
    name = "pr_only" if recalibrate else "pr_only_no_recal"
    config = {"kind": "pr_only", "recipe": bench.p.distill.to_dict(), "recalibrate": recalibrate}
    if bench.cached_proxy(name, config) is not None:
        return
    zoo = bench.zoo(bench.p.distill)
    kd = zoo.kd_data
    values, seconds = {}, []
    for arch in bench.archs:
        w0 = time.perf_counter()
        net = remap_network(bench.space, zoo.reference, arch)
        with torch.no_grad():
            if recalibrate:
                recalibrate_batchnorm(net, kd.batches())
            net.eval()
            values[arch.id] = float((net(kd.inputs).argmax(1) == kd.labels).float().mean())
        seconds.append(time.perf_counter() - w0)
    bench.save_proxy(name, {"config_key": bench.config_key(config), "config": config, "values": values,
                            "score_seconds_per_arch": sum(seconds) / len(seconds)})
    log(f"{name}: done")


def zero_cost(bench: Bench) -> None:
    config = {"kind": "zero_cost", "recipe": bench.p.distill.to_dict(), "metrics": list(ZERO_COST), "seed": 0}
    if all(bench.cached_proxy(m, config) is not None for m in ZERO_COST):
        return
    zoo = bench.zoo(bench.p.distill)
    batches = list(zip(zoo.kd_data.batches(), zoo.kd_data.label_batches()))
    partial_path = bench.cache / f"zero_cost_partial_{bench.config_key(config)}.json"
    partial = json.loads(partial_path.read_text()) if partial_path.is_file() else {}
    for n, arch in enumerate(bench.archs):
        if arch.id in partial:
            continue
        if bench.should_stop():
            raise Cancelled("budget reached")
        log(f"zero-cost proxies {n + 1}/{len(bench.archs)} {arch.id}")
        [scores] = score_zero_cost(bench.space, [arch], ZERO_COST, batches, zoo.in_channels, zoo.num_classes,
                                   seed=0, device=bench.device)
        partial[arch.id] = scores.to_dict()
        partial_path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(partial, partial_path)
    for metric in ZERO_COST:
        values = {a: (None if not math.isfinite(s["values"][metric]) else s["values"][metric]) for a, s in partial.items()}
        secs = [s["seconds"][metric] for s in partial.values()]
        bench.save_proxy(metric, {"config_key": bench.config_key(config), "config": config, "values": values,
                                  "nonfinite": sum(s["nonfinite"][metric] for s in partial.values()),
                                  "score_seconds_per_arch": sum(secs) / len(secs)})
    log("zero-cost proxies: done")


def run_proxies(bench: Bench, groups: tuple[str, ...] = PROXY_GROUPS) -> None:
    """The proxy groups in order; separate processes may run disjoint groups at once."""
    bench.ensure_reference()
    if "main" in groups:
        zoo_proxy(bench, "blockzoo", bench.p.distill)
        pr_only(bench, recalibrate=True)
        pr_only(bench, recalibrate=False)
        zoo_proxy(bench, "blockzoo_no_recal", bench.p.distill, recalibrate=False)
        zoo_proxy(bench, "kd_only_T20", replace(bench.p.distill, init="random"))
    if "zero_cost" in groups:
        zero_cost(bench)
    if "sweep" in groups:
        for t in bench.p.t_sweep:
            if t != bench.p.distill.batches:
                zoo_proxy(bench, f"blockzoo_T{t}", replace(bench.p.distill, batches=t))
        for t in bench.p.t_sweep:
            if t != 20:
                zoo_proxy(bench, f"kd_only_T{t}", replace(bench.p.distill, init="random", batches=t))
    if "epoch" in groups:
        zoo_proxy(bench, "kd_only_epoch", replace(bench.p.distill, init="random", batches=bench.epoch_batches()))
    if "tuning" in groups:
        if bench.p.name != "dev":
            raise SystemExit("--proxies tuning is for --protocol dev: choosing a recipe on the reporting "
                             "architectures would bias the reported numbers")
        for name, changes in TUNING_VARIANTS.items():
            zoo_proxy(bench, name, replace(bench.p.distill, **changes))
