"""Ground truth: train an architecture to its final test accuracy, resumably, once.

One training is one (architecture, initialisation, seed):

* ``SC`` — scratch: ``blockzoo.build_network`` right after ``torch.manual_seed(seed)``;
* ``PR`` — parameter remapping: ``blockzoo.remap.remap_network`` from the zoo's reference
  (channels in the zoo's ``remap_order``), no KD;
* ``KD`` — the zoo's distilled blocks: ``BlockZoo.assemble`` (reference prefix and head, one
  remapped + distilled block per stage).

Training is ``blockzoo.training.train_network`` with a :class:`GroundTruthRecipe` (a
``TrainRecipe`` without its seed). **Common random numbers**: for a given seed every
architecture and every initialisation sees exactly the same data order, crops and flips
(``TrainRecipe.seed = seed``), and SC networks are initialised right after
``torch.manual_seed(seed)``; only the architecture differs. Two seeds differ in both init and
data order, which is what the seed-to-seed ceiling measures.

**Cache**: one small JSON per finished training in ``cache_dir``, named by the SHA-256 of
(space, architecture id, init, recipe, seed, dataset content hash, test subset, device type, and
for PR/KD the reference hash, remap order and zoo recipe + KD-batch hash). Written atomically; a
cached result is never recomputed. **Resume**: ``train_network`` checkpoints after every epoch
into ``checkpoint_dir/<key>.pt``; a killed run restarts from the last finished epoch. A claim
file (``checkpoint_dir/<key>.claim``, locked with ``flock`` while its holder trains) keeps two
processes, or two threads, from training the same key, so several workers (several GPUs) can
share one list of trainings; a killed worker's lock is gone with it.

Networks and inputs are put in ``channels_last`` memory format (faster convolutions on CPUs);
it changes float summation order only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..data import DatasetStore, to_tensor_split
from ..nets import Network, build_network
from ..progress import Cancelled
from ..remap import remap_network
from ..space import Architecture, SearchSpace
from ..training import channels_last, train_network
from ..files import write_atomic
from ..zoo import BlockZoo
from .claims import Claim
from .recipe import DEFAULT_RECIPES, GroundTruthRecipe, default_recipe  # noqa: F401  (re-exported)

INITS = ("SC", "PR", "KD")
# Part of every cache key: bump it only when a cached result can no longer be trusted.
CACHE_VERSION = 1

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Training:
    """One unit of ground truth: an architecture trained from one initialisation with one seed."""

    arch: Architecture
    init: str
    seed: int


def write_json_atomic(obj: Any, path: Path) -> None:
    """``obj`` as indented, key-sorted JSON; readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


@torch.no_grad()
def test_outcomes(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 128) -> dict[str, Any]:
    """Per-example outcomes on the test split, kept with each result so the seed noise can be
    split afterwards into "which borderline images flip" (a finite-test-set effect) and real
    differences between runs: correctness as packed bits (base64, test-set order), the mean
    test cross-entropy and the mean probability of the true class (continuous, less quantised)."""
    net.eval()
    device = next(net.parameters()).device
    correct, nll, p_true = [], 0.0, 0.0
    for start in range(0, len(y), batch_size):
        logits = net(channels_last(x[start:start + batch_size].to(device))).float().cpu()
        target = y[start:start + batch_size].cpu()
        correct.append(logits.argmax(1) == target)
        nll += float(F.cross_entropy(logits, target, reduction="sum"))
        p_true += float(logits.softmax(1).gather(1, target[:, None]).sum())
    bits = np.packbits(torch.cat(correct).numpy().astype(np.uint8))
    return {"test_correct_bits": base64.b64encode(bits.tobytes()).decode(), "test_nll": nll / len(y),
            "test_mean_p_true": p_true / len(y)}


def unpack_correct(record: Mapping[str, Any]) -> Optional[np.ndarray]:
    """The per-example correctness vector stored by :func:`test_outcomes` (None if absent)."""
    bits = record.get("test_correct_bits")
    if bits is None:
        return None
    n = record.get("test_examples")
    return np.unpackbits(np.frombuffer(base64.b64decode(bits), dtype=np.uint8))[:n].astype(bool)


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


class GroundTruth:
    """Trains (or reads from the cache) the final accuracy of :class:`Training` units."""

    def __init__(self, space: SearchSpace, store: DatasetStore, recipe: GroundTruthRecipe, *,
                 cache_dir: Path, checkpoint_dir: Path, zoo: Optional[BlockZoo] = None,
                 channels_last: bool = True, test_limit: Optional[int] = None,
                 device: Optional[torch.device] = None,
                 log: Callable[[str], None] = _logger.info) -> None:
        self.space, self.store, self.recipe, self.zoo = space, store, recipe, zoo
        self.cache_dir, self.checkpoint_dir = Path(cache_dir), Path(checkpoint_dir)
        self.channels_last = channels_last
        self.test_limit = test_limit
        self.device = device or torch.device("cpu")
        self.dataset_hash = store.meta.get("content_hash", "")
        self.log = log
        self._tensors: Optional[tuple[torch.Tensor, ...]] = None

    # --- keys and cache ----------------------------------------------------------------------
    def init_source(self, init: str) -> dict[str, Any]:
        if init == "SC":
            return {}
        if self.zoo is None:
            raise ValueError(f"init {init} needs a block zoo (its reference and blocks)")
        source = {"reference_sha256": self.zoo.manifest["reference"]["sha256"],
                  "remap_order": self.zoo.recipe.remap_order}
        if init == "KD":
            source["zoo_recipe"] = self.zoo.recipe.to_dict()
            source["kd_batches_sha256"] = self.zoo.manifest["kd_batches"]["sha256"]
        return source

    def key_material(self, training: Training) -> dict[str, Any]:
        if training.init not in INITS:
            raise ValueError(f"init must be one of {list(INITS)}, got {training.init!r}")
        material = {"version": CACHE_VERSION, "space": self.space.to_dict(), "arch": training.arch.id,
                    "init": training.init, "recipe": self.recipe.to_dict(), "seed": training.seed,
                    "dataset_hash": self.dataset_hash, "test_limit": self.test_limit,
                    "init_source": self.init_source(training.init)}
        if self.device.type != "cpu":
            # Another device draws other random streams (data order, crops) and rounds differently:
            # its results are not the CPU's.
            material["device_type"] = self.device.type
        return material

    def key(self, training: Training) -> str:
        return hashlib.sha256(_canonical(self.key_material(training)).encode()).hexdigest()

    def cache_path(self, training: Training) -> Path:
        return self.cache_dir / f"{self.key(training)[:24]}.json"

    def cached(self, training: Training) -> Optional[dict[str, Any]]:
        path = self.cache_path(training)
        if not path.is_file():
            return None
        result = json.loads(path.read_text())
        return result if result.get("key") == self.key(training) else None

    # --- training --------------------------------------------------------------------------------
    def tensors(self) -> tuple[torch.Tensor, ...]:
        if self._tensors is None:
            x, y = to_tensor_split(self.store, "train", self.space.input_size)
            xt, yt = to_tensor_split(self.store, "test", self.space.input_size)
            if self.test_limit is not None:
                xt, yt = xt[:self.test_limit], yt[:self.test_limit]
            if self.channels_last:
                x, xt = (t.contiguous(memory_format=torch.channels_last) for t in (x, xt))
            self._tensors = (x, y, xt, yt)
        return self._tensors

    def initial_network(self, training: Training) -> Network:
        x = self.tensors()[0]
        in_channels, num_classes = x.shape[1], self.store.num_classes
        if training.init == "SC":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(training.seed)
                return build_network(self.space, training.arch, in_channels, num_classes)
        if self.zoo is None:
            raise ValueError(f"init {training.init} needs a block zoo (its reference and blocks)")
        if training.init == "PR":
            return remap_network(self.space, self.zoo.reference, training.arch)
        return self.zoo.assemble(training.arch)

    def _claim(self, key: str) -> Optional[Claim]:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        return Claim.take(self.checkpoint_dir / f"{key[:24]}.claim")

    def run(self, training: Training, should_stop: Optional[Callable[[], bool]] = None,
            on_start: Optional[Callable[[], None]] = None) -> Optional[dict[str, Any]]:
        """The cached result, or train now and cache it. None if another worker holds the training.

        ``on_start`` is called once this process holds the training and is about to train it (not
        for a cached result), e.g. to record who trains what. Raises
        ``blockzoo.progress.Cancelled`` when ``should_stop`` turns true (at an epoch boundary,
        after the checkpoint is written).
        """
        found = self.cached(training)
        if found is not None:
            return found
        key = self.key(training)
        claim = self._claim(key)
        if claim is None:
            return None
        try:
            found = self.cached(training)  # finished by another worker meanwhile
            if found is not None:
                return found
            if on_start is not None:
                on_start()
            return self._train(training, key, should_stop)
        finally:
            claim.release()

    def _train(self, training: Training, key: str, should_stop: Optional[Callable[[], bool]]) -> dict[str, Any]:
        checkpoint = self.checkpoint_dir / f"{key[:24]}.pt"
        resumed_from = 0
        if checkpoint.is_file():
            resumed_from = int(torch.load(checkpoint, map_location="cpu", weights_only=True)["step"])
        x, y, xt, yt = self.tensors()
        net = self.initial_network(training)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        load = os.getloadavg()[0]
        cpu0 = time.process_time()
        label = f"{training.init} seed {training.seed} {training.arch.id}"
        self.log(f"[ground truth] {label}" + (f" (resuming at step {resumed_from})" if resumed_from else ""))
        result = train_network(net, x, y, self.recipe.train_recipe(training.seed), x_test=xt, y_test=yt,
                               checkpoint=checkpoint, device=self.device, should_stop=should_stop)
        record = {
            "key": key, "key_material": self.key_material(training), "space": self.space.name,
            "input_size": self.space.input_size, "arch": training.arch.id, "init": training.init,
            "seed": training.seed, "test_accuracy": result.test_accuracy,
            "train_accuracy_last_epoch": result.train_accuracy, "epochs": self.recipe.epochs,
            "steps": result.steps, "resumed_from_step": resumed_from, "device": str(self.device),
            "seconds": result.seconds, "cpu_seconds": time.process_time() - cpu0,
            "torch_threads": torch.get_num_threads(), "load_1min_at_start": load,
            "load_1min_at_end": os.getloadavg()[0],
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if xt is not None and len(yt):
            record.update(test_examples=len(yt), **test_outcomes(net, xt, yt))
        write_json_atomic(record, self.cache_path(training))
        checkpoint.unlink(missing_ok=True)
        self.log(f"[ground truth] {label}: test accuracy {result.test_accuracy:.4f} in {result.seconds:.0f} s")
        return record

    def run_all(self, trainings: Iterable[Training], deadline: Optional[float] = None) -> tuple[int, int]:
        """Run ``trainings`` in order until done or ``deadline`` (time.time()); returns (done, remaining)."""
        trainings = list(trainings)
        done = 0
        stop = (lambda: time.time() > deadline) if deadline is not None else None
        for n, training in enumerate(trainings):
            if stop is not None and stop():
                return done, len(trainings) - n
            try:
                if self.run(training, stop) is not None:
                    done += 1
            except Cancelled:
                self.log("[ground truth] budget reached; checkpoint kept, rerun to resume")
                return done, len(trainings) - n
        return done, 0
