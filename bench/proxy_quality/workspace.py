"""One protocol's workspace: its data, reference, zoos, architectures and caches on disk.

Under ``bench/results/``: ``cache/`` is committed (the reference of the cpu/dev protocols, the
proxies, one JSON per ground-truth training), ``tmp/`` is not (datasets, zoos, checkpoints).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import torch

from blockzoo.data import import_builtin, open_store
from blockzoo.distill import DistillRecipe
from blockzoo.reference import train_reference
from blockzoo.space import Architecture
from blockzoo.validation.design import uniform
from blockzoo.validation.groundtruth import GroundTruth, Training, write_json_atomic
from blockzoo.zoo import BlockZoo

from .protocols import Protocol

BENCH = Path(__file__).resolve().parent.parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
WORK = RESULTS / "tmp" / "proxy_quality"
CACHE = RESULTS / "cache" / "proxy_quality"
GROUNDTRUTH_CACHE = RESULTS / "cache" / "groundtruth"
CHECKPOINTS = WORK / "checkpoints"
FIGURES = RESULTS / "figures"


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def short_hash(obj: Any) -> str:
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
        self.archs: list[Architecture] = uniform(self.space, protocol.k, protocol.arch_seed)
        self._proxies: Optional[dict[str, Any]] = None

    def should_stop(self) -> bool:
        return self.deadline is not None and time.time() > self.deadline

    # --- reference and zoos --------------------------------------------------------------------
    @property
    def reference_dir(self) -> Path:
        # Kept in the committed cache (except for the quick protocol): PR/KD ground truth and every
        # zoo depend on these exact weights. Shared by protocols with the same space, data and
        # recipe (cpu, dev).
        key = short_hash({"space": self.space.to_dict(), "data": self.dataset_hash,
                          "recipe": self.p.reference.to_dict()})
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
        info["path"] = str(self.reference_path.relative_to(ROOT))
        info["cpu_threads"] = torch.get_num_threads()
        info["recipe"] = self.p.reference.to_dict()
        info["dataset_hash"] = self.dataset_hash
        write_json_atomic(info, self.reference_dir / "reference.json")
        log(f"reference: test accuracy {result.test_accuracy:.4f} in {result.seconds:.0f} s")

    def reference_json(self) -> dict[str, Any]:
        path = self.reference_dir / "reference.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def zoo_root(self, recipe: DistillRecipe) -> Path:
        return WORK / "zoos" / short_hash({"recipe": recipe.to_dict(), "data": self.dataset_hash,
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

    def epoch_batches(self) -> int:
        """One epoch's worth of KD batches (the paper's 'B + 650i' ablation), minus the held-out ones."""
        n = int((~self.store.is_test).sum())
        return n // self.p.distill.batch_size - self.p.distill.heldout_batches

    # --- proxies cache -------------------------------------------------------------------------
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
        write_json_atomic(self._proxies, self.proxies_path)

    def config_key(self, config: dict[str, Any]) -> str:
        return short_hash({"config": config, "archs": [a.id for a in self.archs], "data": self.dataset_hash,
                           "reference": self.reference_json().get("sha256"), "space": self.space.to_dict()})

    def cached_proxy(self, name: str, config: dict[str, Any]) -> Optional[dict[str, Any]]:
        entry = self.proxies().get(name)
        return entry if entry is not None and entry.get("config_key") == self.config_key(config) else None

    # --- ground truth ----------------------------------------------------------------------------
    def groundtruth(self, with_zoo: Optional[bool] = None) -> GroundTruth:
        """The protocol's trainer; with the main zoo (needed by PR/KD keys) when it fine-tunes."""
        with_zoo = bool(self.p.finetune_k) if with_zoo is None else with_zoo
        zoo = self.zoo(self.p.distill) if with_zoo else None
        return GroundTruth(self.space, self.store, self.p.groundtruth, zoo=zoo, cache_dir=GROUNDTRUTH_CACHE,
                           checkpoint_dir=CHECKPOINTS, test_limit=self.p.test_limit, device=self.device, log=log)

    def tiered_jobs(self) -> list[tuple[float, Training]]:
        """Trainings with their priority tier: every ceiling seed of the first ``ceiling_k``
        architectures (the ceiling), the SC seeds of the rest (the ground truth), PR and KD
        fine-tuning, the remaining ceiling seeds, then the extra seeds; shifted by the protocol's
        ``tier_offset``."""
        p, jobs = self.p, []
        for arch in self.archs[:p.ceiling_k]:
            jobs += [(0, Training(arch, "SC", s)) for s in sorted(set(p.sc_seeds) | set(p.ceiling_seeds))]
        for arch in self.archs[p.ceiling_k:]:
            jobs += [(1, Training(arch, "SC", s)) for s in p.sc_seeds]
        for arch in self.archs[:p.finetune_k]:
            jobs += [(2, Training(arch, "PR", p.sc_seeds[0])), (2, Training(arch, "KD", p.sc_seeds[0]))]
        for arch in self.archs[p.ceiling_k:]:
            jobs += [(3, Training(arch, "SC", s)) for s in p.ceiling_seeds if s not in p.sc_seeds]
        trained = set(p.sc_seeds) | set(p.ceiling_seeds)
        for arch in self.archs:
            jobs += [(4, Training(arch, "SC", s)) for s in p.extra_seeds if s not in trained]
        return [(tier + p.tier_offset, job) for tier, job in jobs]

    def jobs(self) -> list[Training]:
        return [job for _, job in self.tiered_jobs()]
