"""Proxy quality: the paper's Table 1, Figure 2 and Figure 3 on this project's own code.

Samples K architectures with ``space.sample`` (per stage a uniform depth, then a uniform
expansion ratio per layer) from ``random.Random(arch_seed)`` — reporting seed 0, fixed before any
result was seen; the reference itself is never a candidate — and measures how well every proxy
ranks them against their final accuracy trained from scratch (SC), from PR weights (PR) and
from zoo KD weights (KD).

Stages (each resumable; run them separately or with ``--stage all``):

``proxies``
    dataset store, reference (trained once, kept under ``bench/results/cache/``), block zoos
    for every T of the sweep with PR+KD (``init="remap"``) and KD-only (``init="random"``), the
    KD-only zoo after one epoch's worth of batches, the PR-only ablation (remapped network, BN
    recalibrated on the T KD batches, accuracy on those batches) and the zero-cost baselines
    (``blockzoo.zerocost.score_zero_cost`` on the same T batches, seed 0 init). Each finished
    proxy configuration is cached in ``bench/results/cache/proxy_quality/<protocol>/proxies.json``.
``groundtruth``
    final accuracies through :mod:`ground_truth` (one cached JSON per training, resumable).
``report``
    Spearman ρ and Kendall τ of every proxy against SC / PR / KD final accuracy with bootstrap
    95% intervals (archs resampled with replacement), the seed-to-seed ceiling, the proxy cost
    per architecture, ρ against T (Figure 2) and final accuracy by initialisation (Figure 3):
    ``bench/results/proxy_quality[.quick].{md,json}`` and PNGs in ``bench/results/figures/``.

Protocols: ``cpu`` (the committed report; see docs/proxy-quality-protocol.md), ``quick``
(``--quick``: a ≤15-minute smoke run of every stage at toy scale — its numbers are not
evidence), ``gpu`` (``mbv3-cifar`` for a lent GPU machine) and ``dev`` (the ``cpu`` protocol on
development architectures drawn with seed 1, for tuning; see docs/proxy-tuning.md).

    PYTHONPATH=. .venv/bin/python bench/proxy_quality.py --stage all --quick
    PYTHONPATH=. .venv/bin/python bench/proxy_quality.py --stage proxies --budget-minutes 60
    PYTHONPATH=. .venv/bin/python bench/proxy_quality.py --stage groundtruth --budget-minutes 120
    PYTHONPATH=. .venv/bin/python bench/proxy_quality.py --stage report
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ground_truth import GroundTruth, GroundTruthRecipe, Job, atomic_write_json, resized_space, unpack_correct  # noqa: E402

from blockzoo.data import import_builtin, open_store, to_tensor_split  # noqa: E402
from blockzoo.distill import DistillRecipe  # noqa: E402
from blockzoo.progress import Cancelled  # noqa: E402
from blockzoo.proxy import recalibrate_batchnorm, score_architectures  # noqa: E402
from blockzoo.reference import train_reference  # noqa: E402
from blockzoo.remap import remap_network  # noqa: E402
from blockzoo.space import Architecture, SearchSpace, get_space, sample_architectures  # noqa: E402
from blockzoo.training import TrainRecipe  # noqa: E402
from blockzoo.zerocost import score_zero_cost  # noqa: E402
from blockzoo.zoo import BlockZoo  # noqa: E402

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
WORK = RESULTS / "tmp" / "proxy_quality"
CACHE = RESULTS / "cache" / "proxy_quality"
FIGURES = RESULTS / "figures"
T_SWEEP = (1, 2, 5, 10, 15, 20, 40)
ZERO_COST = ("gradnorm", "fisher", "snip", "synflow", "naswot", "flops", "l2norm", "params")
TARGETS = ("SC", "PR", "KD")
PROXY_GROUPS = ("main", "zero_cost", "sweep", "epoch")
# Variants of the BlockZoo recipe compared on the development set only (docs/proxy-tuning.md):
# name -> changes to the protocol's DistillRecipe. "seed1" draws other KD batches: the spread
# between it and the default is the proxy's own noise.
TUNING_VARIANTS: dict[str, dict[str, Any]] = {
    "tune_seed1": {"seed": 1},
    "tune_sgd_lr0.03": {"lr": 0.03},
    "tune_sgd_lr0.3": {"lr": 0.3},
    "tune_adam_lr1e-3": {"optimizer": "adam", "lr": 1e-3, "momentum": 0.0},
    "tune_remap_l1": {"remap_order": "l1"},
    "tune_T10": {"batches": 10},
    "tune_T40": {"batches": 40},
    "tune_bs128_T10": {"batch_size": 128, "batches": 10},
}


@dataclass(frozen=True)
class Protocol:
    name: str
    space: str
    input_size: int
    train_limit: Optional[int]           # Fashion-MNIST training subset (None: all 60,000)
    test_limit: Optional[int]            # first N test images (None: the full 10,000)
    reference: TrainRecipe
    distill: DistillRecipe               # the BlockZoo recipe (T = distill.batches)
    groundtruth: GroundTruthRecipe
    k: int = 40
    arch_seed: int = 0
    sc_seeds: tuple[int, ...] = (0,)     # SC seeds trained for every architecture (GT = their mean)
    # The ceiling is Spearman ρ between the SC means of two disjoint seed groups; with
    # sc_seeds = the first group it measures how reproducible the ground truth itself is.
    ceiling_groups: tuple[tuple[int, ...], tuple[int, ...]] = ((0,), (1,))
    ceiling_k: int = 12                  # first N architectures trained with every ceiling seed
    finetune_k: int = 20                 # first N architectures trained from PR and KD weights
    t_sweep: tuple[int, ...] = T_SWEEP
    device: str = "cpu"
    note: str = ""
    tier_offset: float = 0.0             # where this protocol's jobs go when several share workers

    @property
    def ceiling_seeds(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.ceiling_groups[0]) | set(self.ceiling_groups[1])))

    @property
    def space_obj(self) -> SearchSpace:
        return resized_space(get_space(self.space), self.input_size)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "space": self.space_obj.name, "base_space": self.space,
                "input_size": self.input_size, "dataset": "fashion-mnist", "train_limit": self.train_limit,
                "test_limit": self.test_limit, "reference_recipe": self.reference.to_dict(),
                "distill_recipe": self.distill.to_dict(), "groundtruth_recipe": self.groundtruth.to_dict(),
                "k": self.k, "arch_seed": self.arch_seed, "sc_seeds": list(self.sc_seeds),
                "ceiling_groups": [list(g) for g in self.ceiling_groups], "ceiling_k": self.ceiling_k,
                "finetune_k": self.finetune_k, "t_sweep": list(self.t_sweep), "device": self.device,
                "note": self.note}


# The tuned BlockZoo recipe (docs/proxy-tuning.md): SGD lr 0.1 momentum 0.9, T = 20 batches of 64.
DISTILL = DistillRecipe(batches=20, batch_size=64, optimizer="sgd", lr=0.1, momentum=0.9)

# The CPU-scale protocol's ground truth: full training set, 4 epochs, two SC seeds averaged, the
# ceiling between that mean and the mean of two more seeds (docs/proxy-quality-protocol.md says
# why: one 3-epoch seed on a 10k subset was noise-dominated). Trained on a GPU when one is lent
# (cuda if available, else CPU: same recipe, slower).
GROUND_TRUTH = GroundTruthRecipe(epochs=4, batch_size=256, warmup_epochs=0.3)

PROTOCOLS: dict[str, Protocol] = {
    # The committed CPU-scale protocol (docs/proxy-quality-protocol.md explains every choice).
    "cpu": Protocol(
        name="cpu", space="mbv3-tiny", input_size=28, train_limit=None, test_limit=None,
        reference=TrainRecipe(epochs=10, batch_size=256), distill=DISTILL, groundtruth=GROUND_TRUTH,
        sc_seeds=(0, 1), ceiling_groups=((0, 1), (2, 3)), ceiling_k=20, finetune_k=20, device="cuda",
        note="mbv3-tiny structure at 28x28 Fashion-MNIST (no downsampling), all 60,000 training images, full test set",
    ),
    # Development architectures (seed 1) for tuning; same data, reference and ground-truth recipe.
    "dev": Protocol(
        name="dev", space="mbv3-tiny", input_size=28, train_limit=None, test_limit=None,
        reference=TrainRecipe(epochs=10, batch_size=256), distill=DISTILL, groundtruth=GROUND_TRUTH,
        k=20, arch_seed=1, sc_seeds=(0, 1), ceiling_groups=((0,), (1,)), ceiling_k=20, finetune_k=0,
        t_sweep=(5, 20), device="cuda", tier_offset=2.5,
        note="development set for tuning: never used for the reported numbers",
    ),
    # A smoke run of every stage at toy scale (<= 15 minutes); not evidence of anything.
    "quick": Protocol(
        name="quick", space="mbv3-tiny", input_size=16, train_limit=2_000, test_limit=2_000,
        reference=TrainRecipe(epochs=3), distill=DISTILL,
        groundtruth=GroundTruthRecipe(epochs=1, warmup_epochs=0.2), k=8, ceiling_k=8, finetune_k=4,
        t_sweep=(5, 20),
        note="QUICK smoke run: toy data and training, numbers are not evidence",
    ),
    # The paper's space for a lent GPU machine (Fashion-MNIST resized to 32x32); sized to ~15 min.
    "gpu": Protocol(
        name="gpu", space="mbv3-cifar", input_size=32, train_limit=None, test_limit=None,
        reference=TrainRecipe(epochs=5, batch_size=256), distill=DISTILL,
        groundtruth=GroundTruthRecipe(epochs=2, batch_size=256, warmup_epochs=0.2), k=40,
        ceiling_k=10, finetune_k=10, device="cuda",
        note="mbv3-cifar on Fashion-MNIST resized to 32x32, for a lent GPU; sized to its 15-minute budget",
    ),
}


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Bench:
    """Everything one protocol needs: data, reference, zoos, archs, caches."""

    def __init__(self, protocol: Protocol, deadline: Optional[float]) -> None:
        self.p = protocol
        self.space = protocol.space_obj
        self.deadline = deadline
        self.work = WORK / protocol.name
        self.cache = CACHE / protocol.name
        self.device = torch.device(protocol.device if protocol.device != "cuda" or torch.cuda.is_available() else "cpu")
        options = {} if protocol.train_limit is None else {"train_limit": protocol.train_limit}
        info = import_builtin("fashion-mnist", WORK / "datasets", seed=0, **options)
        self.store = open_store(info.path)
        self.dataset_hash = info.content_hash
        candidates = sample_architectures(self.space, protocol.k + 10, protocol.arch_seed)
        self.archs: list[Architecture] = [a for a in candidates if a != self.space.reference][:protocol.k]
        self._proxies: Optional[dict[str, Any]] = None

    # --- budget --------------------------------------------------------------------------------
    def should_stop(self) -> bool:
        return self.deadline is not None and time.time() > self.deadline

    # --- reference and zoos --------------------------------------------------------------------
    @property
    def reference_dir(self) -> Path:
        # Kept in the committed cache (except for --quick): PR/KD ground truth and every zoo depend
        # on these exact weights. Shared by protocols with the same space, data and recipe (cpu, dev).
        key = _hash({"space": self.space.to_dict(), "data": self.dataset_hash, "recipe": self.p.reference.to_dict()})
        return (WORK if self.p.name == "quick" else CACHE) / f"reference-{key}"

    @property
    def reference_path(self) -> Path:
        return self.reference_dir / "reference.safetensors"

    def ensure_reference(self) -> None:
        if self.reference_path.is_file():
            return
        log(f"training the reference ({self.p.reference.epochs} epochs)")
        self.reference_path.parent.mkdir(parents=True, exist_ok=True)
        result = train_reference(self.space, self.store, self.p.reference, self.reference_path,
                                 device=self.device, should_stop=self.should_stop)
        info = result.to_dict()
        info["path"] = str(self.reference_path.relative_to(BENCH.parent))
        info["cpu_threads"] = torch.get_num_threads()
        info["recipe"] = self.p.reference.to_dict()
        info["dataset_hash"] = self.dataset_hash
        atomic_write_json(info, self.reference_dir / "reference.json")
        log(f"reference: test accuracy {result.test_accuracy:.4f} in {result.seconds:.0f} s")

    def zoo_root(self, recipe: DistillRecipe) -> Path:
        return WORK / "zoos" / _hash({"recipe": recipe.to_dict(), "data": self.dataset_hash,
                                      "space": self.space.to_dict(),
                                      "reference": self.reference_json().get("sha256")})

    def zoo(self, recipe: DistillRecipe) -> BlockZoo:
        root = self.zoo_root(recipe)
        if (root / "manifest.json").is_file():
            return BlockZoo.open(root, device=self.device)
        self.ensure_reference()
        return BlockZoo.create(root, self.space, self.store, self.reference_path, recipe,
                               reference_recipe=self.p.reference.to_dict(), device=self.device)

    def zoo_ready(self) -> bool:
        """The main zoo exists (its reference trained); blocks may still be missing."""
        return bool(self.reference_json()) and (self.zoo_root(self.p.distill) / "manifest.json").is_file()

    def reference_json(self) -> dict[str, Any]:
        path = self.reference_dir / "reference.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def epoch_batches(self) -> int:
        """One epoch's worth of KD batches (the paper's 'B + 650i' ablation), minus the held-out ones."""
        n = int((~self.store.is_test).sum())
        return n // self.p.distill.batch_size - self.p.distill.heldout_batches

    # --- proxies cache -----------------------------------------------------------------------------
    @property
    def proxies_path(self) -> Path:
        return self.cache / "proxies.json"

    def proxies(self) -> dict[str, Any]:
        if self._proxies is None:
            self._proxies = json.loads(self.proxies_path.read_text()) if self.proxies_path.is_file() else {}
        return self._proxies

    def save_proxy(self, name: str, entry: dict[str, Any]) -> None:
        # Merge with what other processes wrote meanwhile (several may run disjoint --proxies groups).
        on_disk = json.loads(self.proxies_path.read_text()) if self.proxies_path.is_file() else {}
        self._proxies = {**self.proxies(), **on_disk, name: entry}
        atomic_write_json(self._proxies, self.proxies_path)

    def config_key(self, config: dict[str, Any]) -> str:
        return _hash({"config": config, "archs": [a.id for a in self.archs], "data": self.dataset_hash,
                      "reference": self.reference_json().get("sha256"), "space": self.space.to_dict()})

    def cached_proxy(self, name: str, config: dict[str, Any]) -> Optional[dict[str, Any]]:
        entry = self.proxies().get(name)
        return entry if entry is not None and entry.get("config_key") == self.config_key(config) else None

    # --- proxy computations ------------------------------------------------------------------------
    def zoo_proxy(self, name: str, recipe: DistillRecipe, recalibrate: bool = True) -> None:
        config = {"kind": "zoo", "recipe": recipe.to_dict(), "recalibrate": recalibrate}
        if self.cached_proxy(name, config) is not None:
            return
        if self.should_stop():
            raise Cancelled("budget reached")
        zoo = self.zoo(recipe)
        log(f"{name}: distilling the blocks of {len(self.archs)} architectures (T={recipe.batches}, init={recipe.init})")
        cpu0, wall0 = time.process_time(), time.perf_counter()
        missing_before = sum(len(v) for v in zoo.missing_blocks(self.archs).values())
        zoo.ensure_blocks(self.archs, should_stop=self.should_stop)
        distill_wall, distill_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        # Scoring cost on a freshly opened zoo whose blocks are all stored (blocks read from disk).
        zoo = BlockZoo.open(zoo.root, device=self.device)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        scores = score_architectures(zoo, self.archs, recalibrate=recalibrate)
        score_wall, score_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        # Cost of one architecture alone (no prefix sharing with others): the first 3, averaged;
        # measured for the main recipe only (the other configurations cost the same per batch).
        single = []
        for arch in (self.archs[:3] if name == "blockzoo" else []):
            fresh = BlockZoo.open(zoo.root, device=self.device)
            w0 = time.perf_counter()
            score_architectures(fresh, [arch], recalibrate=recalibrate)
            single.append(time.perf_counter() - w0)
        self.save_proxy(name, {
            "config_key": self.config_key(config), "config": config,
            "values": {s.arch_id: s.proxy_accuracy for s in scores},
            "heldout": {s.arch_id: s.heldout_accuracy for s in scores},
            "kd_loss": {s.arch_id: s.kd_loss for s in scores},
            "blocks_distilled": missing_before, "distill_seconds": distill_wall, "distill_cpu_seconds": distill_cpu,
            "score_seconds_per_arch": score_wall / len(self.archs), "score_cpu_seconds_per_arch": score_cpu / len(self.archs),
            "score_seconds_single_arch": sum(single) / len(single) if single else float("nan"),
            "load_1min": os.getloadavg()[0], "threads": torch.get_num_threads(), "device": str(self.device),
        })
        log(f"{name}: done (distill {distill_wall:.0f} s for {missing_before} blocks, score {score_wall / len(self.archs):.2f} s/arch)")

    def measure_cpu_cost(self, threads: int) -> None:
        """The BlockZoo proxy's cost on this machine's CPU with the zoo holding every block (the
        issue's ≤ 2 s target), stored next to the proxy values, which may come from a GPU run."""
        entry = self.proxies().get("blockzoo")
        if entry is None:
            raise SystemExit("no blockzoo proxy yet: run --stage proxies first")
        torch.set_num_threads(threads)
        zoo = BlockZoo.open(self.zoo_root(self.p.distill), device="cpu")
        missing = sum(len(v) for v in zoo.missing_blocks(self.archs).values())
        if missing:
            raise SystemExit(f"the zoo lacks {missing} blocks of these architectures; distil them first")
        load0 = os.getloadavg()[0]
        cpu0, wall0 = time.process_time(), time.perf_counter()
        scores = score_architectures(zoo, self.archs)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        single = []
        for arch in self.archs[:5]:
            fresh = BlockZoo.open(zoo.root, device="cpu")
            w0 = time.perf_counter()
            score_architectures(fresh, [arch])
            single.append(time.perf_counter() - w0)
        drift = max(abs(s.proxy_accuracy - entry["values"][s.arch_id]) for s in scores)
        entry = {**entry, "cpu_cost": {
            "score_seconds_per_arch": wall / len(self.archs), "score_cpu_seconds_per_arch": cpu / len(self.archs),
            "score_seconds_single_arch": sum(single) / len(single), "threads": threads,
            "load_1min_before": load0, "load_1min_after": os.getloadavg()[0],
            "max_abs_difference_to_stored_values": drift, "cpu_count": os.cpu_count(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }}
        self.save_proxy("blockzoo", entry)
        log(f"blockzoo proxy on the CPU: {wall / len(self.archs):.2f} s/arch in one call, "
            f"{sum(single) / len(single):.2f} s alone ({threads} threads, load {load0:.1f}); "
            f"max |difference| to the stored values {drift:.4f}")

    def pr_only(self, recalibrate: bool) -> None:
        name = "pr_only" if recalibrate else "pr_only_no_recal"
        config = {"kind": "pr_only", "recipe": self.p.distill.to_dict(), "recalibrate": recalibrate}
        if self.cached_proxy(name, config) is not None:
            return
        zoo = self.zoo(self.p.distill)
        kd = zoo.kd_data
        values, seconds = {}, []
        for arch in self.archs:
            w0 = time.perf_counter()
            net = remap_network(self.space, zoo.reference, arch)
            with torch.no_grad():
                if recalibrate:
                    recalibrate_batchnorm(net, kd.batches())
                net.eval()
                values[arch.id] = float((net(kd.inputs).argmax(1) == kd.labels).float().mean())
            seconds.append(time.perf_counter() - w0)
        self.save_proxy(name, {"config_key": self.config_key(config), "config": config, "values": values,
                               "score_seconds_per_arch": sum(seconds) / len(seconds)})
        log(f"{name}: done")

    def zero_cost(self) -> None:
        config = {"kind": "zero_cost", "recipe": self.p.distill.to_dict(), "metrics": list(ZERO_COST), "seed": 0}
        if all(self.cached_proxy(m, config) is not None for m in ZERO_COST):
            return
        zoo = self.zoo(self.p.distill)
        batches = list(zip(zoo.kd_data.batches(), zoo.kd_data.label_batches()))
        partial_path = self.cache / f"zero_cost_partial_{self.config_key(config)}.json"
        partial = json.loads(partial_path.read_text()) if partial_path.is_file() else {}
        for n, arch in enumerate(self.archs):
            if arch.id in partial:
                continue
            if self.should_stop():
                raise Cancelled("budget reached")
            log(f"zero-cost proxies {n + 1}/{len(self.archs)} {arch.id}")
            [scores] = score_zero_cost(self.space, [arch], ZERO_COST, batches, zoo.in_channels, zoo.num_classes,
                                       seed=0, device=self.device)
            partial[arch.id] = scores.to_dict()
            partial_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(partial, partial_path)
        for metric in ZERO_COST:
            values = {a: (None if not math.isfinite(s["values"][metric]) else s["values"][metric]) for a, s in partial.items()}
            secs = [s["seconds"][metric] for s in partial.values()]
            self.save_proxy(metric, {"config_key": self.config_key(config), "config": config, "values": values,
                                     "nonfinite": sum(s["nonfinite"][metric] for s in partial.values()),
                                     "score_seconds_per_arch": sum(secs) / len(secs)})
        log("zero-cost proxies: done")

    def run_proxies(self, groups: tuple[str, ...] = PROXY_GROUPS) -> None:
        """The proxy groups in order; separate processes may run disjoint groups at once."""
        self.ensure_reference()
        if "main" in groups:
            self.zoo_proxy("blockzoo", self.p.distill)
            self.pr_only(recalibrate=True)
            self.pr_only(recalibrate=False)
            self.zoo_proxy("blockzoo_no_recal", self.p.distill, recalibrate=False)
            self.zoo_proxy("kd_only_T20", replace(self.p.distill, init="random"))
        if "zero_cost" in groups:
            self.zero_cost()
        if "sweep" in groups:
            for t in self.p.t_sweep:
                if t != self.p.distill.batches:
                    self.zoo_proxy(f"blockzoo_T{t}", replace(self.p.distill, batches=t))
            for t in self.p.t_sweep:
                if t != 20:
                    self.zoo_proxy(f"kd_only_T{t}", replace(self.p.distill, init="random", batches=t))
        if "epoch" in groups:
            self.zoo_proxy("kd_only_epoch", replace(self.p.distill, init="random", batches=self.epoch_batches()))
        if "tuning" in groups:
            if self.p.name != "dev":
                raise SystemExit("--proxies tuning is for --protocol dev: choosing a recipe on the reporting "
                                 "architectures would bias the reported numbers")
            for name, changes in TUNING_VARIANTS.items():
                self.zoo_proxy(name, replace(self.p.distill, **changes))

    # --- ground truth --------------------------------------------------------------------------------
    def groundtruth(self) -> GroundTruth:
        zoo = self.zoo(self.p.distill) if self.p.finetune_k else None
        gt = GroundTruth(self.space, self.store, self.p.groundtruth, zoo=zoo, test_limit=self.p.test_limit,
                         device=self.device)
        return gt

    def tiered_jobs(self) -> list[tuple[float, Job]]:
        """Jobs with their priority tier: every ceiling seed of the first ``ceiling_k``
        architectures (the ceiling), the SC seeds of the rest (the ground truth), PR and KD
        fine-tuning, then the remaining ceiling seeds; shifted by the protocol's ``tier_offset``."""
        p, jobs = self.p, []
        for arch in self.archs[:p.ceiling_k]:
            jobs += [(0, Job(arch, "SC", s)) for s in sorted(set(p.sc_seeds) | set(p.ceiling_seeds))]
        for arch in self.archs[p.ceiling_k:]:
            jobs += [(1, Job(arch, "SC", s)) for s in p.sc_seeds]
        for arch in self.archs[:p.finetune_k]:
            jobs += [(2, Job(arch, "PR", p.sc_seeds[0])), (2, Job(arch, "KD", p.sc_seeds[0]))]
        for arch in self.archs[p.ceiling_k:]:
            jobs += [(3, Job(arch, "SC", s)) for s in p.ceiling_seeds if s not in p.sc_seeds]
        return [(tier + p.tier_offset, job) for tier, job in jobs]

    def jobs(self) -> list[Job]:
        return [job for _, job in self.tiered_jobs()]

    def run_groundtruth(self) -> tuple[int, int]:
        gt = self.groundtruth()
        done, remaining = gt.run_all(self.jobs(), self.deadline)
        log(f"ground truth: {done} done, {remaining} remaining")
        return done, remaining


# ------------------------------------------------------------------------------------------------
# parallel ground truth (several worker processes sharing one accelerator)

def groundtruth_worker(benches: list[Bench], deadline: Optional[float]) -> int:
    """Train the highest-priority job no other worker holds, again and again, across ``benches``.

    PR/KD jobs wait until the main process has trained the reference and distilled the blocks
    they need (a worker never distils: one process owns the zoo). Returns trainings finished."""
    gts = [GroundTruth(b.space, b.store, b.p.groundtruth, test_limit=b.p.test_limit, device=b.device)
           for b in benches]
    queue = sorted(((tier, n, i, job) for n, b in enumerate(benches) for i, (tier, job) in enumerate(b.tiered_jobs())),
                   key=lambda t: t[:3])
    stop = (lambda: time.time() > deadline) if deadline is not None else None
    finished = 0
    while deadline is None or time.time() < deadline:
        trained, waiting = False, False
        for _, n, _, job in queue:
            bench, gt = benches[n], gts[n]
            if job.init != "SC":
                if gt.zoo is None:
                    if not bench.zoo_ready():
                        waiting = True
                        continue
                    gt.zoo = bench.zoo(bench.p.distill)
                if gt.zoo.missing_blocks([job.arch]):
                    waiting = True
                    continue
            if gt.cached(job) is not None:
                continue
            try:
                record = gt.run(job, stop)
            except Cancelled:
                return finished
            if record is not None:
                finished += 1
                trained = True
                break  # rescan from the top: priorities first
        if not trained:
            if not waiting:
                break
            time.sleep(5)
    return finished


def parallel_run(benches: list[Bench], workers: int, deadline: Optional[float], groups: tuple[str, ...],
                 threads: int) -> None:
    """``workers`` ground-truth processes, while this one trains the reference, distils every
    protocol's blocks (unblocking PR/KD jobs) and computes the first protocol's proxies."""
    names = ",".join(b.p.name for b in benches)
    command = [sys.executable, str(Path(__file__).resolve()), "--stage", "gtworker", "--protocols", names,
               "--threads", "1"] + (["--deadline-at", str(deadline)] if deadline else [])
    procs = [subprocess.Popen(command) for _ in range(workers)]
    log(f"started {workers} ground-truth workers")
    try:
        benches[0].ensure_reference()
        for bench in benches:
            zoo = bench.zoo(bench.p.distill)
            log(f"{bench.p.name}: distilling the blocks of {len(bench.archs)} architectures")
            zoo.ensure_blocks(bench.archs, should_stop=bench.should_stop)
        benches[0].run_proxies(groups)
    except Cancelled:
        log("budget reached in the main process")
    finally:
        for proc in procs:
            proc.wait()
    log("all workers finished")


# ------------------------------------------------------------------------------------------------
# report

def _rank_corr(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman ρ and Kendall τ-b (ties handled as scipy does), vectorised for the bootstrap."""
    from scipy.stats import rankdata

    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan"), float("nan")
    rho = float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    iu = np.triu_indices(len(x), 1)
    dx, dy = dx[iu], dy[iu]
    denom = math.sqrt(float(np.count_nonzero(dx)) * float(np.count_nonzero(dy)))
    tau = float((dx * dy).sum() / denom) if denom else float("nan")
    return rho, tau


def correlate(x: np.ndarray, y: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """ρ and τ with percentile bootstrap 95% intervals (architectures resampled with replacement)."""
    rho, tau = _rank_corr(x, y)
    rng = np.random.default_rng(seed)
    boot_rho, boot_tau = [], []
    if len(x) >= 4:
        for _ in range(n_boot):
            idx = rng.integers(0, len(x), len(x))
            r, t = _rank_corr(x[idx], y[idx])
            if math.isfinite(r):
                boot_rho.append(r)
                boot_tau.append(t)

    def ci(v: list[float]) -> Optional[list[float]]:
        return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if len(v) >= 50 else None

    return {"spearman": rho, "kendall": tau, "spearman_ci": ci(boot_rho), "kendall_ci": ci(boot_tau), "n": int(len(x))}


def _clean(v: float) -> Optional[float]:
    return None if v is None or not math.isfinite(v) else round(float(v), 4)


ROWS = [  # (row name, group, label)
    ("gradnorm", "baseline", "Gradnorm"), ("fisher", "baseline", "Fisher"), ("snip", "baseline", "Snip"),
    ("synflow", "baseline", "Synflow"), ("naswot", "baseline", "NASWOT"), ("flops", "baseline", "FLOPs (MACs)"),
    ("params", "baseline", "Params"), ("l2norm", "baseline", "L2norm"),
    ("pr_only_no_recal", "ablation", "Initial accuracy of PR (BN stats from the reference)"),
    ("pr_only", "ablation", "Initial accuracy of PR (BN recalibrated on the T batches)"),
    ("kd_only_T20", "ablation", "Initial accuracy of KD-only, 20 batches"),
    ("kd_only_epoch", "ablation", "Initial accuracy of KD-only, one epoch of batches"),
    ("blockzoo_no_recal", "ablation", "PR + KD without BN recalibration"),
    ("blockzoo", "ours", "**PR + KD (BlockZoo), T = 20**"),
] + [(name, "tuning", f"PR + KD, {', '.join(f'{k} {v}' for k, v in changes.items())}")
     for name, changes in TUNING_VARIANTS.items()]


def ground_truth_table(bench: Bench) -> dict[str, Any]:
    """Final accuracies found in the cache, per target, plus the ceiling pairs."""
    gt = bench.groundtruth()
    p = bench.p
    table: dict[str, dict[str, float]] = {"SC": {}, "PR": {}, "KD": {}}
    seeds: dict[int, dict[str, float]] = {}
    seconds: dict[str, list[float]] = {"SC": [], "PR": [], "KD": []}
    cpu_seconds: list[float] = []  # SC trainings (wall time includes time-sharing with other work)
    for arch in bench.archs:
        for s in sorted(set(p.sc_seeds) | set(p.ceiling_seeds)):
            r = gt.cached(Job(arch, "SC", s))
            if r is not None:
                seeds.setdefault(s, {})[arch.id] = r["test_accuracy"]
                seconds["SC"].append(r["seconds"])
                cpu_seconds.append(r.get("cpu_seconds", r["seconds"]))
        got = [seeds.get(s, {}).get(arch.id) for s in p.sc_seeds]
        if all(v is not None for v in got):
            table["SC"][arch.id] = float(np.mean(got))
        for init in ("PR", "KD"):
            if bench.p.finetune_k:
                r = gt.cached(Job(arch, init, p.sc_seeds[0]))
                if r is not None:
                    table[init][arch.id] = r["test_accuracy"]
                    seconds[init].append(r["seconds"])
    return {"table": table, "seeds": seeds, "seconds": seconds, "sc_cpu_seconds": cpu_seconds}


def noise_decomposition(bench: Bench, s0: int, s1: int) -> dict[str, Any]:
    """How much of the seed-to-seed difference in test accuracy is the finite test set.

    For two runs of one architecture, the accuracy difference is the mean over the test images
    of (correct₀ − correct₁); if both runs had the same expected accuracy and their flips were
    independent across images, its sd would be sqrt(disagreement / n). Comparing that with the
    observed rms difference says whether more test images (or averaging runs) can help at all.
    Also: the seed-to-seed ρ of two continuous measures (test NLL, mean p(true class)), which
    are not the ground truth but show how much of the noise is accuracy's 0/1 quantisation.
    """
    gt = bench.groundtruth()
    rows = []
    for arch in bench.archs:
        r0, r1 = gt.cached(Job(arch, "SC", s0)), gt.cached(Job(arch, "SC", s1))
        if r0 is None or r1 is None:
            continue
        c0, c1 = unpack_correct(r0), unpack_correct(r1)
        if c0 is None or c1 is None:
            continue
        rows.append({"arch": arch.id, "diff": float(c0.mean() - c1.mean()), "disagreement": float((c0 != c1).mean()),
                     "n": len(c0), "accuracy": (r0["test_accuracy"], r1["test_accuracy"]),
                     "nll": (r0["test_nll"], r1["test_nll"]),
                     "p_true": (r0["test_mean_p_true"], r1["test_mean_p_true"])})
    out: dict[str, Any] = {"n_archs": len(rows), "seeds": [s0, s1]}
    if len(rows) < 2:
        return out
    rms_diff = float(np.sqrt(np.mean([r["diff"] ** 2 for r in rows])))
    expected = float(np.sqrt(np.mean([r["disagreement"] / r["n"] for r in rows])))
    out.update({
        "rms_seed_difference": rms_diff, "mean_disagreement": float(np.mean([r["disagreement"] for r in rows])),
        "test_set_sd_of_difference": expected,
        "test_set_share_of_variance": expected ** 2 / rms_diff ** 2 if rms_diff > 0 else None,
        "nll_seed_spearman": _clean(correlate(np.array([-r["nll"][0] for r in rows]),
                                              np.array([-r["nll"][1] for r in rows]))["spearman"]),
        "p_true_seed_spearman": _clean(correlate(np.array([r["p_true"][0] for r in rows]),
                                                 np.array([r["p_true"][1] for r in rows]))["spearman"]),
        "accuracy_seed_spearman": _clean(correlate(np.array([r["accuracy"][0] for r in rows]),
                                                   np.array([r["accuracy"][1] for r in rows]))["spearman"]),
    })
    return out


def seed_projection(reliability: float, seconds_per_training: Optional[float]) -> dict[str, Any]:
    """What averaging seeds buys, from the measured single-seed reliability R (Spearman–Brown:
    a mean of m seeds has reliability mR / (1 + (m − 1)R); two independent such means correlate
    at about that value, which is what the ceiling measures). Rank ρ tracks it closely for
    roughly normal data. Also the seeds per mean the 0.9 ceiling needs and the SC trainings
    (two disjoint groups on 10 architectures + one group on the other 30) that implies."""
    if not math.isfinite(reliability) or reliability <= 0:
        return {}
    by_m = {m: m * reliability / (1 + (m - 1) * reliability) for m in (1, 2, 3, 4, 6, 8)}
    needed = math.ceil(0.9 * (1 - reliability) / (0.1 * reliability)) if reliability < 0.9 else 1
    trainings = 10 * 2 * needed + 30 * needed
    out = {"reliability_of_m_seed_mean": {str(m): v for m, v in by_m.items()}, "seeds_per_mean_for_0.9": needed,
           "sc_trainings_for_ceiling_and_40": trainings}
    if seconds_per_training:
        out["sc_cpu_hours_at_measured_speed"] = trainings * seconds_per_training / 3600
        out["cpu_seconds_per_training"] = seconds_per_training
    return out


def make_report(bench: Bench, out_stem: Path) -> dict[str, Any]:
    proxies = bench.proxies()
    gtt = ground_truth_table(bench)
    table, seeds = gtt["table"], gtt["seeds"]
    p = bench.p
    ids = [a.id for a in bench.archs]

    def corr_against(values: dict[str, Optional[float]], target: str) -> dict[str, Any]:
        common = [a for a in ids if a in table[target] and values.get(a) is not None]
        x = np.array([values[a] for a in common], dtype=float)
        y = np.array([table[target][a] for a in common], dtype=float)
        return correlate(x, y)

    rows = []
    for name, group, label in ROWS:
        entry = proxies.get(name)
        if entry is None:
            continue
        stats = {t: corr_against(entry["values"], t) for t in TARGETS}
        rows.append({
            "name": name, "group": group, "label": label,
            "spearman": {t: _clean(stats[t]["spearman"]) for t in TARGETS},
            "kendall": {t: _clean(stats[t]["kendall"]) for t in TARGETS},
            "spearman_ci": {t: stats[t]["spearman_ci"] for t in TARGETS},
            "kendall_ci": {t: stats[t]["kendall_ci"] for t in TARGETS},
            "n": {t: stats[t]["n"] for t in TARGETS},
            "seconds_per_arch": _clean(entry.get("score_seconds_per_arch", float("nan"))),
            "seconds_single_arch": _clean(entry.get("score_seconds_single_arch", float("nan"))),
            "distill_seconds": _clean(entry.get("distill_seconds", float("nan"))),
        })
    extras = []
    for name in ("heldout", "kd_loss"):
        entry = proxies.get("blockzoo")
        if entry is None:
            continue
        values = {a: (-v if name == "kd_loss" else v) for a, v in entry[name].items()}
        stats = {t: corr_against(values, t) for t in TARGETS}
        extras.append({"name": f"blockzoo_{name}", "spearman": {t: _clean(stats[t]["spearman"]) for t in TARGETS},
                       "spearman_ci": {t: stats[t]["spearman_ci"] for t in TARGETS},
                       "n": {t: stats[t]["n"] for t in TARGETS}})

    # Ceiling: ρ between the SC means of two disjoint seed groups, on the architectures that have
    # every seed of both; plus the plain two-seed numbers (first seed of each group) for the
    # variance decomposition.
    group_a, group_b = p.ceiling_groups
    full = [a for a in ids if all(a in seeds.get(s, {}) for s in (*group_a, *group_b))]
    mean_a = np.array([np.mean([seeds[s][a] for s in group_a]) for a in full])
    mean_b = np.array([np.mean([seeds[s][a] for s in group_b]) for a in full])
    ceiling = correlate(mean_a, mean_b)
    s0, s1 = group_a[0], group_b[0]
    both = [a for a in ids if a in seeds.get(s0, {}) and a in seeds.get(s1, {})]
    single = correlate(np.array([seeds[s0][a] for a in both]), np.array([seeds[s1][a] for a in both]))
    diffs = [abs(seeds[s0][a] - seeds[s1][a]) for a in both]
    means = [0.5 * (seeds[s0][a] + seeds[s1][a]) for a in both]
    noise_sd = float(np.sqrt(np.mean(np.square(diffs)) / 2)) if diffs else float("nan")
    spread_sd = float(np.std(means, ddof=1)) if len(means) > 1 else float("nan")
    signal_var = spread_sd ** 2 - noise_sd ** 2 / 2 if len(means) > 1 else float("nan")
    reliability = signal_var / (signal_var + noise_sd ** 2) if len(means) > 1 and signal_var > 0 else float("nan")
    ceiling_detail = {
        "spearman": _clean(ceiling["spearman"]), "kendall": _clean(ceiling["kendall"]),
        "spearman_ci": ceiling["spearman_ci"], "n": len(full), "groups": [list(group_a), list(group_b)],
        "single_seed_spearman": _clean(single["spearman"]), "single_seed_spearman_ci": single["spearman_ci"],
        "single_seed_n": len(both), "seeds": [s0, s1],
        "mean_abs_seed_difference": _clean(float(np.mean(diffs)) if diffs else float("nan")),
        "max_abs_seed_difference": _clean(float(np.max(diffs)) if diffs else float("nan")),
        "seed_noise_sd": _clean(noise_sd), "arch_mean_sd": _clean(spread_sd),
        "single_seed_reliability": _clean(reliability),
        "noise_decomposition": noise_decomposition(bench, s0, s1),
        "projection": seed_projection(reliability, float(np.median(gtt["sc_cpu_seconds"])) if gtt["sc_cpu_seconds"] else None),
    }

    # Figure 2: ρ against T.
    sweep = {"blockzoo": {}, "kd_only": {}}
    for t in p.t_sweep:
        for kind, name in (("blockzoo", "blockzoo" if t == p.distill.batches else f"blockzoo_T{t}"),
                           ("kd_only", f"kd_only_T{t}")):
            entry = proxies.get(name)
            if entry is not None:
                sweep[kind][t] = {tg: _clean(corr_against(entry["values"], tg)["spearman"]) for tg in TARGETS}

    acc_range = {t: ([_clean(min(v.values())), _clean(max(v.values()))] if v else None) for t, v in table.items()}
    complete = (len(table["SC"]) == len(ids) and len(full) >= min(p.ceiling_k, 10)
                and len(table["PR"]) >= p.finetune_k and len(table["KD"]) >= p.finetune_k)
    status = ("quick" if p.name == "quick" else "complete" if complete else "partial")
    ours = next((r for r in rows if r["name"] == "blockzoo"), None)
    baselines = [r for r in rows if r["group"] == "baseline" and r["spearman"]["SC"] is not None]
    best = max(baselines, key=lambda r: r["spearman"]["SC"], default=None)
    bz_entry = proxies.get("blockzoo", {})
    bz_cost = bz_entry.get("cpu_cost", {}).get("score_seconds_per_arch", bz_entry.get("score_seconds_per_arch"))
    acceptance = {
        "ceiling_at_least_0.9_on_10": bool(ceiling_detail["n"] >= 10 and (ceiling_detail["spearman"] or 0) >= 0.9),
        "blockzoo_rho_sc": None if ours is None else ours["spearman"]["SC"],
        "blockzoo_rho_sc_n": None if ours is None else ours["n"]["SC"],
        "blockzoo_rho_sc_at_least_0.8_on_40": bool(ours is not None and ours["n"]["SC"] >= 40
                                                   and (ours["spearman"]["SC"] or -1) >= 0.8),
        "best_baseline": None if best is None else {"name": best["name"], "rho_sc": best["spearman"]["SC"]},
        "blockzoo_above_every_baseline": bool(ours is not None and best is not None and ours["spearman"]["SC"] is not None
                                              and ours["spearman"]["SC"] > best["spearman"]["SC"]),
        "blockzoo_seconds_per_arch": _clean(bz_cost) if bz_cost is not None else None,
    }
    report = {
        "status": status,
        "protocol": p.to_dict(),
        "k": len(ids),
        "archs": ids,
        "ceiling": _clean(ceiling["spearman"]),
        "ceiling_detail": ceiling_detail,
        "acceptance": acceptance,
        "rows": rows,
        "extra_signals": extras,
        "t_sweep": {k: {str(t): v for t, v in d.items()} for k, d in sweep.items()},
        "ground_truth": {"counts": {t: len(v) for t, v in table.items()}, "accuracy_range": acc_range,
                         "final_accuracy": table, "sc_seeds": {str(s): v for s, v in seeds.items()},
                         "mean_train_seconds": {t: _clean(float(np.mean(v)) if v else float("nan"))
                                                for t, v in gtt["seconds"].items()}},
        "reference": bench.reference_json(),
        "proxy_cost": {name: {k: _clean(e.get(k, float("nan"))) for k in
                              ("score_seconds_per_arch", "score_cpu_seconds_per_arch", "score_seconds_single_arch",
                               "distill_seconds", "distill_cpu_seconds")}
                       | {"blocks_distilled": e.get("blocks_distilled"), "device": e.get("device", "cpu"),
                          "cpu_cost": e.get("cpu_cost")}
                       for name, e in proxies.items()},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "load_1min": os.getloadavg()[0], "torch": torch.__version__,
                    "python": platform.python_version(), "torch_threads": torch.get_num_threads()},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    figures = plot(report, out_stem.name)
    report["figures"] = figures
    atomic_write_json(report, out_stem.parent / f"{out_stem.name}.json")
    (out_stem.parent / f"{out_stem.name}.md").write_text(markdown(report))
    return report


def plot(report: dict[str, Any], stem: str) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    FIGURES.mkdir(parents=True, exist_ok=True)
    out = {}
    # Figure 2: ρ vs T.
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    for ax, target in zip(axes, TARGETS):
        for kind, style, label in (("blockzoo", "o-", "PR + KD (BlockZoo)"), ("kd_only", "s--", "KD only")):
            pts = sorted((int(t), v[target]) for t, v in report["t_sweep"][kind].items() if v[target] is not None)
            if pts:
                ax.plot([t for t, _ in pts], [v for _, v in pts], style, label=label)
        if report["ceiling"] is not None:
            ax.axhline(report["ceiling"], color="grey", lw=0.8, ls=":", label="seed-to-seed ceiling")
        ax.set_xscale("log")
        ax.set_xticks(list(T_SWEEP))
        ax.set_xticklabels([str(t) for t in T_SWEEP])
        ax.set_xlabel("KD batches T")
        ax.set_title(f"vs {target} final accuracy")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Spearman ρ")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=8)
    fig.suptitle(f"Figure 2 ({report['status']}, {report['protocol']['name']} protocol): ρ against the number of KD batches")
    fig.tight_layout()
    path = FIGURES / f"{stem}_fig2_rho_vs_T.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    out["fig2"] = str(path.relative_to(RESULTS))
    # Figure 3: final accuracy by initialisation.
    table = report["ground_truth"]["final_accuracy"]
    fig, ax = plt.subplots(figsize=(6, 4))
    data = [[100 * v for v in table[t].values()] for t in TARGETS]
    if any(data):
        ax.boxplot([d if d else [float("nan")] for d in data], showfliers=False)
        ax.set_xticks([1, 2, 3], [f"{t} (n={len(d)})" for t, d in zip(TARGETS, data)])
        paired = [a for a in table["SC"] if a in table["PR"] and a in table["KD"]]
        for a in paired:
            ax.plot([1, 2, 3], [100 * table[t][a] for t in TARGETS], color="grey", alpha=0.35, lw=0.8)
        for i, d in enumerate(data, start=1):
            ax.scatter(np.full(len(d), i) + np.linspace(-0.08, 0.08, max(len(d), 1))[:len(d)], d, s=10, zorder=3)
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title(f"Figure 3 ({report['status']}): fine-tuned accuracy by initialisation")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = FIGURES / f"{stem}_fig3_final_accuracy_by_init.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    out["fig3"] = str(path.relative_to(RESULTS))
    return out


def _fmt(v: Optional[float], ci: Optional[list[float]] = None) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def _noise_lines(d: dict[str, Any]) -> list[str]:
    if d.get("n_archs", 0) < 2:
        return []
    return [
        f"Where the seed noise comes from ({d['n_archs']} architectures whose two runs kept per-image results): "
        f"the two runs disagree on {100 * d['mean_disagreement']:.1f} % of the test images; rms accuracy difference "
        f"{100 * d['rms_seed_difference']:.2f} points, of which the finite test set alone (independent flips, "
        f"equal expected accuracy) explains sd {100 * d['test_set_sd_of_difference']:.2f} points, "
        f"{100 * d['test_set_share_of_variance']:.0f} % of the variance. Seed-to-seed ρ of continuous measures on "
        f"the same runs: test NLL {_fmt(d['nll_seed_spearman'])}, mean p(true class) {_fmt(d['p_true_seed_spearman'])} "
        f"(accuracy {_fmt(d['accuracy_seed_spearman'])}).",
        "",
    ]


def _projection_lines(d: dict[str, Any]) -> list[str]:
    if not d:
        return []
    means = ", ".join(f"{m}: {v:.2f}" for m, v in d["reliability_of_m_seed_mean"].items())
    cost = (f", ≈ {d['sc_cpu_hours_at_measured_speed']:.0f} CPU-hours at this run's median "
            f"{d['cpu_seconds_per_training']:.0f} CPU-s per training"
            if "sc_cpu_hours_at_measured_speed" in d else "")
    return [f"Projected ceiling for means of m seeds (Spearman–Brown from the single-seed reliability): {means}. "
            f"A 0.9 ceiling needs ≈ {d['seeds_per_mean_for_0.9']} seeds per mean: "
            f"{d['sc_trainings_for_ceiling_and_40']} SC trainings for 40 architectures with the ceiling on 10{cost}.", ""]


def markdown(r: dict[str, Any]) -> str:
    p = r["protocol"]
    c = r["ceiling_detail"]
    gt = r["ground_truth"]
    banner = {
        "quick": "> **QUICK SMOKE RUN** (`--quick`): toy data (2,000 training images, 2,000 test images, 16×16),\n"
                 "> a 3-epoch reference, 1-epoch ground truth, 8 architectures. It shows that every stage runs\n"
                 "> end to end; its correlations are **not evidence** about the proxy.",
        "partial": "> **PARTIAL**: the ground truth is not complete yet (counts below); correlations use the\n"
                   "> architectures trained so far and will change. Rerun `--stage groundtruth` to continue.",
        "complete": "",
    }[r["status"]]
    lines = [
        f"# Proxy quality ({p['name']} protocol, {r['status']})", "", banner, "",
        f"Space `{p['space']}` ({p['note']}); Fashion-MNIST, training subset {p['train_limit'] or 'all 60,000'}, "
        f"test {p['test_limit'] or 'all 10,000'}; K = {r['k']} architectures sampled with seed {p['arch_seed']} "
        "(per stage a uniform depth, then a uniform ratio per layer; the reference excluded).",
        f"Reference: test accuracy {r['reference'].get('test_accuracy', float('nan')):.4f} "
        f"({p['reference_recipe']['epochs']} epochs). BlockZoo recipe: T = {p['distill_recipe']['batches']} batches of "
        f"{p['distill_recipe']['batch_size']}, {p['distill_recipe']['optimizer']} lr {p['distill_recipe']['lr']}, "
        f"remap order `{p['distill_recipe']['remap_order']}`, BN recalibrated on the T batches.",
        f"Ground truth: `GroundTruthRecipe({', '.join(f'{k}={v}' for k, v in p['groundtruth_recipe'].items())})`, "
        f"SC = mean of seeds {p['sc_seeds']}; PR and KD fine-tuned on the first {p['finetune_k']} architectures; "
        "common random numbers (same data order and augmentation for every architecture).",
        "",
        f"Ground truth so far: SC {gt['counts']['SC']}/{r['k']}, PR {gt['counts']['PR']}, KD {gt['counts']['KD']}; "
        f"SC accuracy range {gt['accuracy_range']['SC']}; mean training time (s): {gt['mean_train_seconds']}.",
        "",
        "## Acceptance checks (issue 3)",
        "",
        f"- seed-to-seed ceiling ≥ 0.9 on ≥ 10 architectures: **{'yes' if r['acceptance']['ceiling_at_least_0.9_on_10'] else 'no'}**",
        f"- BlockZoo ρ vs SC ≥ 0.80 over 40 architectures: **{'yes' if r['acceptance']['blockzoo_rho_sc_at_least_0.8_on_40'] else 'no'}** "
        f"(ρ = {_fmt(r['acceptance']['blockzoo_rho_sc'])} on {r['acceptance']['blockzoo_rho_sc_n']})",
        f"- BlockZoo above every baseline vs SC: **{'yes' if r['acceptance']['blockzoo_above_every_baseline'] else 'no'}** "
        f"(best baseline: {r['acceptance']['best_baseline']})",
        f"- BlockZoo proxy wall seconds per architecture (zoo holding the blocks): {_fmt(r['acceptance']['blockzoo_seconds_per_arch'])} "
        "(target ≤ 2 s on 2 quiet cores for mbv3-tiny at T = 20)",
        "",
        "## Seed-to-seed ceiling",
        "",
        f"Spearman ρ between the SC means of seeds {c['groups'][0]} and of seeds {c['groups'][1]} on {c['n']} "
        f"architectures: **{_fmt(c['spearman'], c['spearman_ci'])}** (Kendall τ {_fmt(c['kendall'])}). "
        f"Single seeds {c['seeds'][0]} vs {c['seeds'][1]} on {c['single_seed_n']} architectures: ρ = "
        f"{_fmt(c['single_seed_spearman'], c['single_seed_spearman_ci'])}. Mean |seed difference| "
        f"{_fmt(c['mean_abs_seed_difference'])}, max {_fmt(c['max_abs_seed_difference'])}; seed noise sd "
        f"{_fmt(c['seed_noise_sd'])}; sd of the architecture means {_fmt(c['arch_mean_sd'])}; single-seed "
        f"reliability (signal variance share) {_fmt(c['single_seed_reliability'])}.",
        "",
        *_noise_lines(c.get("noise_decomposition", {})),
        *_projection_lines(c.get("projection", {})),
        "## Table 1: rank correlation with final accuracy (bootstrap 95% intervals)",
        "",
        "| type | proxy | ρ vs SC | ρ vs PR | ρ vs KD | τ vs SC | τ vs PR | τ vs KD | n (SC/PR/KD) | wall s / arch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        rho = [_fmt(row["spearman"][t], row["spearman_ci"][t]) for t in TARGETS]
        tau = [_fmt(row["kendall"][t], row["kendall_ci"][t]) for t in TARGETS]
        n = "/".join(str(row["n"][t]) for t in TARGETS)
        cost = "–" if row["seconds_per_arch"] is None else f"{row['seconds_per_arch']:.3f}"
        lines.append(f"| {row['group']} | {row['label']} | " + " | ".join(rho + tau) + f" | {n} | {cost} |")
    lines += ["", "Extra signals of the BlockZoo zoo (ρ vs SC / PR / KD): " + "; ".join(
        f"`{e['name']}` " + "/".join(_fmt(e["spearman"][t]) for t in TARGETS) for e in r["extra_signals"]), ""]
    bz = r["proxy_cost"].get("blockzoo", {})
    lines += [
        "## Cost per architecture",
        "",
        f"BlockZoo proxy once the zoo holds the blocks: {_fmt(bz.get('score_seconds_per_arch'))} s wall "
        f"({_fmt(bz.get('score_cpu_seconds_per_arch'))} s of CPU time) per architecture scored in one call (shared "
        f"prefixes reused), {_fmt(bz.get('score_seconds_single_arch'))} s wall for one architecture alone; distilling "
        f"the {bz.get('blocks_distilled')} blocks the K architectures need took {_fmt(bz.get('distill_seconds'))} s wall "
        f"({_fmt(bz.get('distill_cpu_seconds'))} s CPU; one-time, lazily). Zero-cost baselines: the `s / arch` column "
        "(20 batches each, seed-0 init). Wall-clock on a shared 2-core machine "
        f"(load {r['machine']['load_1min']:.1f} at report time), {r['machine']['torch_threads']} torch thread(s).",
        "",
        "## Figure 2: ρ against T",
        "",
        "| T | " + " | ".join(f"PR+KD vs {t}" for t in TARGETS) + " | " + " | ".join(f"KD-only vs {t}" for t in TARGETS) + " |",
        "|---|" + "---|" * 6,
    ]
    for t in p["t_sweep"]:
        a = r["t_sweep"]["blockzoo"].get(str(t), {})
        b = r["t_sweep"]["kd_only"].get(str(t), {})
        lines.append(f"| {t} | " + " | ".join(_fmt(a.get(x)) for x in TARGETS) + " | "
                     + " | ".join(_fmt(b.get(x)) for x in TARGETS) + " |")
    lines += ["", f"![Figure 2](figures/{Path(r['figures']['fig2']).name})", "",
              "## Figure 3: final accuracy by initialisation", ""]
    for t in TARGETS:
        v = list(gt["final_accuracy"][t].values())
        if v:
            lines.append(f"- {t}: n = {len(v)}, mean {100 * np.mean(v):.2f} %, range {100 * min(v):.2f}–{100 * max(v):.2f} %")
    paired = [a for a in gt["final_accuracy"]["SC"] if a in gt["final_accuracy"]["PR"] and a in gt["final_accuracy"]["KD"]]
    if paired:
        for t in ("PR", "KD"):
            wins = sum(gt["final_accuracy"][t][a] > gt["final_accuracy"]["SC"][a] for a in paired)
            lines.append(f"- {t} beats SC on {wins}/{len(paired)} paired architectures")
    lines += ["", f"![Figure 3](figures/{Path(r['figures']['fig3']).name})", "",
              f"Generated {r['date']} by `{r['command']}`.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Proxy quality (paper Table 1, Fig. 2, Fig. 3)")
    parser.add_argument("--stage", choices=("proxies", "groundtruth", "report", "all", "parallel", "gtworker",
                                            "cpu-cost"),
                        default="all", help="parallel: --workers ground-truth processes + reference, zoo and "
                        "proxies in this one (for a GPU machine); gtworker: one such worker")
    parser.add_argument("--protocols", default=None,
                        help="parallel/gtworker: comma-separated protocols whose jobs are shared, in priority order")
    parser.add_argument("--workers", type=int, default=4, help="parallel: ground-truth worker processes")
    parser.add_argument("--deadline-at", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="cpu")
    parser.add_argument("--quick", action="store_true", help="the quick protocol (<= 15 minutes, smoke run)")
    parser.add_argument("--budget-minutes", type=float, default=None, help="stop cleanly after this long")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--proxies", default=",".join(PROXY_GROUPS),
                        help=f"proxy groups for --stage proxies, comma-separated (default: {','.join(PROXY_GROUPS)}; "
                        "also 'tuning': the TUNING_VARIANTS, for the dev protocol)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    protocol = PROTOCOLS["quick" if args.quick else args.protocol]
    deadline = time.time() + 60 * args.budget_minutes if args.budget_minutes else None
    if args.deadline_at is not None:
        deadline = args.deadline_at
    if args.stage in ("parallel", "gtworker"):
        if torch.cuda.is_available():
            torch.backends.cudnn.benchmark = True
        names = (args.protocols or protocol.name).split(",")
        benches = [Bench(PROTOCOLS[n], deadline) for n in names]
        if args.stage == "gtworker":
            log(f"worker {os.getpid()}: {groundtruth_worker(benches, deadline)} trainings finished")
        else:
            parallel_run(benches, args.workers, deadline, tuple(g for g in args.proxies.split(",") if g), args.threads)
        return
    bench = Bench(protocol, deadline)
    if args.stage == "cpu-cost":
        bench.measure_cpu_cost(args.threads)
        return
    stem = RESULTS / ("proxy_quality" if protocol.name == "cpu" else f"proxy_quality.{protocol.name}")
    started = time.perf_counter()
    try:
        if args.stage in ("proxies", "all"):
            bench.run_proxies(tuple(g for g in args.proxies.split(",") if g))
        if args.stage in ("groundtruth", "all"):
            bench.run_groundtruth()
    except Cancelled:
        log("budget reached: finished work is cached; rerun the same command to continue")
    if args.stage in ("report", "all"):
        report = make_report(bench, stem)
        log(f"report written: {stem}.md (status {report['status']}, ceiling {report['ceiling']})")
    log(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
