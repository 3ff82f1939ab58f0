"""The block zoo: every candidate block of every stage, remapped and distilled, on disk.

A zoo directory is self-contained (the dataset store is not needed after creation)::

    manifest.json             space, recipe, seeds, dataset hash, reference hash, normalisation
    reference.safetensors     the trained reference network
    kd_batches.safetensors    the T KD batches (+ held-out batches): inputs and labels
    blocks/s<m>/<code>.safetensors   one distilled candidate block; metadata = its KD stats

Blocks are built eagerly (:meth:`BlockZoo.build_eager`, all ``M x N``) or lazily
(:meth:`BlockZoo.ensure_blocks`, only those an architecture needs and the zoo lacks). Each
block file is written atomically (temp file + rename) as soon as its chunk is done, so a
killed job loses at most the chunk in flight, and concurrent workers never see half a file.
Same seed + same batches ⇒ bit-identical blocks, whichever way they were built.
"""

from __future__ import annotations

import copy
import json
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .distill import (
    DistillRecipe,
    DistillStats,
    StageTeacher,
    distill_blocks,
    distill_stacked,
    teacher_features,
)
from .files import atomic_path, file_sha256, write_atomic
from .memory import release_free_memory
from .nets import Network, build_block, build_network, init_weights
from .progress import ProgressFn, StopFn, check_stop, report
from .remap import remap_block, reorder_channels
from .space import Architecture, SearchSpace, block_code
from .training import channels_last

if TYPE_CHECKING:
    from .data import DatasetStore

# 2: the recipe names its distillation engine. A version-1 manifest written since the engine
# became a recipe field is the same document, so it is read; one without the engine is refused.
MANIFEST_VERSION = 2
READABLE_MANIFEST_VERSIONS = (1, 2)
BlockKey = tuple[int, tuple[int, ...]]  # (stage index, expansion ratios)
# What a loaded block weighs beyond its tensors: its module objects and the proxy's working copy
# of it (measured on mbv3-tiny, about 0.45 MB a block); counted against the block cache's bound.
BLOCK_OBJECT_BYTES = 512 * 1024


def atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file so that readers see either nothing or the whole file."""
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def save_network(net: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> str:
    atomic_save(net.state_dict(), path, metadata)
    return file_sha256(path)


def load_network(space: SearchSpace, arch: Architecture, in_channels: int, num_classes: int,
                 path: Path) -> Network:
    net = build_network(space, arch, in_channels, num_classes)
    net.load_state_dict(load_file(str(path)))
    return net


@dataclass
class KDData:
    """The fixed KD batches (normalised inputs, labels) and held-out batches, all from the training split."""

    inputs: torch.Tensor
    labels: torch.Tensor
    heldout_inputs: torch.Tensor
    heldout_labels: torch.Tensor
    batch_size: int

    def batches(self) -> list[torch.Tensor]:
        return list(self.inputs.split(self.batch_size))

    def label_batches(self) -> list[torch.Tensor]:
        return list(self.labels.split(self.batch_size))

    def heldout_batches(self) -> list[torch.Tensor]:
        return list(self.heldout_inputs.split(self.batch_size))

    @classmethod
    def select(cls, x: torch.Tensor, y: torch.Tensor, recipe: DistillRecipe) -> "KDData":
        """Draw T KD batches and the held-out batches from training tensors, seeded by the recipe."""
        problem = recipe.training_images_problem(len(x))
        if problem:
            raise ValueError(problem)
        needed = recipe.training_images_needed
        generator = torch.Generator().manual_seed(recipe.seed)
        order = torch.randperm(len(x), generator=generator)[:needed]
        kd, held = order[:recipe.batches * recipe.batch_size], order[recipe.batches * recipe.batch_size:]
        return cls(x[kd].contiguous(), y[kd].contiguous(), x[held].contiguous(), y[held].contiguous(),
                   recipe.batch_size)

    def to(self, device: torch.device) -> "KDData":
        """On ``device``, images in channels-last layout (as the zoo's modules: see BlockZoo)."""
        return KDData(channels_last(self.inputs.to(device)), self.labels.to(device),
                      channels_last(self.heldout_inputs.to(device)), self.heldout_labels.to(device),
                      self.batch_size)

    def save(self, path: Path) -> None:
        atomic_save({"inputs": self.inputs, "labels": self.labels, "heldout_inputs": self.heldout_inputs,
                     "heldout_labels": self.heldout_labels}, path, {"batch_size": str(self.batch_size)})

    @classmethod
    def load(cls, path: Path) -> "KDData":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as fh:
            batch_size = int(fh.metadata()["batch_size"])
        t = load_file(str(path))
        return cls(t["inputs"], t["labels"], t["heldout_inputs"], t["heldout_labels"], batch_size)


class BlockZoo:
    """A persisted block zoo (see module docstring). Open with :meth:`open`, make with :meth:`create`."""

    def __init__(self, root: Path, manifest: dict[str, Any], device: torch.device | str | None = None) -> None:
        self.root = Path(root)
        self.manifest = manifest
        # Where KD and scoring compute (files always hold CPU tensors, so a zoo built on a GPU
        # opens anywhere). Modules and KD images live in channels-last layout: oneDNN runs these
        # small depthwise blocks faster so (docs/core-api.md, "Speed notes").
        self.device = torch.device(device or "cpu")
        self.space = SearchSpace.from_dict(manifest["space"])
        self.recipe = DistillRecipe.from_dict(manifest["recipe"])
        self.in_channels: int = manifest["in_channels"]
        self.num_classes: int = manifest["num_classes"]
        self._reference: Optional[Network] = None
        self._kd: Optional[KDData] = None
        self._teachers: Optional[list[StageTeacher]] = None
        self._heldout_teachers: Optional[list[StageTeacher]] = None
        self._block_cache: OrderedDict[BlockKey, tuple[nn.Sequential, int]] = OrderedDict()  # block, bytes
        self._block_cache_nbytes = 0
        self._stats_cache: dict[BlockKey, DistillStats] = {}  # a block's KD stats never change once stored
        self.block_cache_size = 2048
        self.block_cache_bytes: Optional[int] = None  # also bound the loaded blocks by their tensors' bytes
        # Blocks made and trained at once when distilling: a stage can have hundreds missing, and
        # each group is persisted and freed before the next is made.
        self.distill_group = 64
        self.distill_memory_bytes: Optional[int] = None  # the stacked engine's activation budget per chunk
        self.distilled_count = 0  # blocks distilled by this instance (lazy builds count here)

    # --- creation and opening ----------------------------------------------------------
    @classmethod
    def create(cls, root: Path | str, space: SearchSpace, store: "DatasetStore", reference_path: Path | str,
               recipe: DistillRecipe, *, reference_recipe: dict[str, Any] | None = None,
               device: torch.device | str | None = None) -> "BlockZoo":
        """A new zoo for ``store``: loads the trained reference, draws the KD batches, writes the manifest."""
        from .data import channel_stats, to_tensor_split

        x, y = to_tensor_split(store, "train", space.input_size)
        in_channels, num_classes = x.shape[1], store.num_classes
        reference = load_network(space, space.reference, in_channels, num_classes, Path(reference_path))
        mean, std = channel_stats(store)
        return cls.create_from_parts(
            root, space, reference, KDData.select(x, y, recipe), recipe,
            in_channels=in_channels, num_classes=num_classes,
            dataset_hash=store.meta.get("content_hash", ""),
            normalization={"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
            class_names=list(store.class_names), reference_recipe=reference_recipe, device=device,
        )

    @classmethod
    def create_from_parts(cls, root: Path | str, space: SearchSpace, reference: Network, kd_data: KDData,
               recipe: DistillRecipe, *, in_channels: int, num_classes: int,
               dataset_hash: str = "", normalization: dict[str, list[float]] | None = None,
               class_names: list[str] | None = None, reference_recipe: dict[str, Any] | None = None,
               device: torch.device | str | None = None) -> "BlockZoo":
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        reference_hash = save_network(reference, root / "reference.safetensors",
                                      {"arch": space.reference.id})
        kd_data.save(root / "kd_batches.safetensors")
        manifest = {
            "version": MANIFEST_VERSION,
            "space": space.to_dict(),
            "recipe": recipe.to_dict(),
            "in_channels": in_channels,
            "num_classes": num_classes,
            "class_names": class_names or [str(i) for i in range(num_classes)],
            "dataset_hash": dataset_hash,
            "normalization": normalization or {},
            "reference": {"file": "reference.safetensors", "sha256": reference_hash,
                          "arch": space.reference.id, "recipe": reference_recipe or {}},
            "kd_batches": {"file": "kd_batches.safetensors",
                           "sha256": file_sha256(root / "kd_batches.safetensors")},
        }
        write_atomic(root / "manifest.json", json.dumps(manifest, indent=2))
        return cls(root, manifest, device)

    @classmethod
    def open(cls, root: Path | str, device: torch.device | str | None = None) -> "BlockZoo":
        root = Path(root)
        path = root / "manifest.json"
        if not path.is_file():
            raise FileNotFoundError(f"no block zoo at {root} (manifest.json missing)")
        manifest = json.loads(path.read_text())
        version = manifest.get("version")
        if version not in READABLE_MANIFEST_VERSIONS:
            raise ValueError(f"unsupported zoo manifest version {version} in {path} (this BlockZoo reads "
                             f"versions {', '.join(map(str, READABLE_MANIFEST_VERSIONS))})")
        if "engine" not in manifest.get("recipe", {}):
            # The blocks were distilled by an engine the manifest does not name, so blocks added
            # lazily now could not be made the same way.
            raise ValueError(f"the zoo at {root} was made before zoos recorded their distillation engine "
                             "(manifest version 1); build a new zoo (`blockzoo zoo build`)")
        return cls(root, manifest, device)

    # --- reference and teacher features ------------------------------------------------
    @property
    def reference(self) -> Network:
        """The reference network with channels in the recipe's remap order (eval mode)."""
        if self._reference is None:
            net = load_network(self.space, self.space.reference, self.in_channels, self.num_classes,
                               self.root / "reference.safetensors")
            self._reference = reorder_channels(net, self.recipe.remap_order).to(self.device).eval()
            self._reference.to(memory_format=torch.channels_last)
        return self._reference

    @property
    def kd_data(self) -> KDData:
        if self._kd is None:
            self._kd = KDData.load(self.root / "kd_batches.safetensors").to(self.device)
        return self._kd

    def teacher(self, stage: int) -> StageTeacher:
        if self._teachers is None:
            self._teachers = teacher_features(self.reference, self.kd_data.batches())
        return self._teachers[stage]

    def heldout_teacher(self, stage: int) -> StageTeacher:
        if self._heldout_teachers is None:
            self._heldout_teachers = teacher_features(self.reference, self.kd_data.heldout_batches())
        return self._heldout_teachers[stage]

    # --- blocks --------------------------------------------------------------------------
    def block_path(self, stage: int, expand: tuple[int, ...]) -> Path:
        return self.root / "blocks" / f"s{stage + 1}" / f"{block_code(expand)}.safetensors"

    def has_block(self, stage: int, expand: tuple[int, ...]) -> bool:
        return self.block_path(stage, expand).is_file()

    def stored_blocks(self) -> int:
        return sum(1 for _ in (self.root / "blocks").glob("s*/*.safetensors"))

    def block_stats(self, stage: int, expand: tuple[int, ...]) -> DistillStats:
        """The KD statistics stored with a block (read once: the proxy asks for them per architecture)."""
        from safetensors import safe_open

        key = (stage, tuple(expand))
        if key not in self._stats_cache:
            with safe_open(str(self.block_path(stage, expand)), "pt") as fh:
                self._stats_cache[key] = DistillStats.from_metadata(fh.metadata())
        return self._stats_cache[key]

    def load_block(self, stage: int, expand: tuple[int, ...]) -> nn.Sequential:
        """A distilled block (cached in memory, least recently used out first; callers must not train it)."""
        key = (stage, tuple(expand))
        if key in self._block_cache:
            self._block_cache.move_to_end(key)
            return self._block_cache[key][0]
        block = build_block(self.space, stage, expand)
        block.load_state_dict(load_file(str(self.block_path(stage, expand))))
        block.to(self.device).to(memory_format=torch.channels_last)
        nbytes = (sum(t.nbytes for t in block.parameters()) + sum(t.nbytes for t in block.buffers())
                  + BLOCK_OBJECT_BYTES)
        self._block_cache[key] = (block, nbytes)
        self._block_cache_nbytes += nbytes
        self._trim_block_cache()
        return block

    def limit_memory(self, max_bytes: int) -> None:
        """Bound this zoo's memory: at most ``max_bytes`` of loaded blocks (least recently used out
        first) and, when distilling, stacked chunks of at most ``max_bytes / 4`` of activations.

        Scoring many architectures touches many blocks (mbv3-tiny's 3,900 weigh 1.2 GiB); a block
        that left the cache is loaded again from its file when needed, and a block's distillation
        does not depend on its chunk (bit-identical with one torch thread, to rounding with several:
        ``blockzoo.distill.stacked``), so scores do not change.
        """
        self.block_cache_bytes = max_bytes
        self.distill_memory_bytes = max(max_bytes // 4, 16 * 1024**2)
        self._trim_block_cache()

    def _trim_block_cache(self) -> None:
        # The block just added stays, even alone past the bound: it is in use.
        while len(self._block_cache) > 1 and (
                len(self._block_cache) > self.block_cache_size
                or (self.block_cache_bytes is not None and self._block_cache_nbytes > self.block_cache_bytes)):
            _, (_, nbytes) = self._block_cache.popitem(last=False)
            self._block_cache_nbytes -= nbytes

    def _forget_block(self, key: BlockKey) -> None:
        cached = self._block_cache.pop(key, None)
        if cached is not None:
            self._block_cache_nbytes -= cached[1]

    def initial_block(self, stage: int, expand: tuple[int, ...]) -> nn.Sequential:
        """A block before KD: PR weights, or a seeded random init for the KD-only ablation."""
        if self.recipe.init == "remap":
            return remap_block(self.space, stage, expand, self.reference.stages[stage]).to(
                memory_format=torch.channels_last)
        # crc32, not hash(): str hashes change between processes and blocks must not.
        seed = self.recipe.seed * 1_000_003 + stage * 10_007 + zlib.crc32(block_code(expand).encode())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            block = build_block(self.space, stage, expand)
            init_weights(block)
        return block.to(self.device).to(memory_format=torch.channels_last)

    def missing_blocks(self, archs: Iterable[Architecture]) -> dict[int, list[tuple[int, ...]]]:
        missing: dict[int, list[tuple[int, ...]]] = {}
        for arch in archs:
            arch = self.space.parse(arch)
            for m, expand in enumerate(arch.expand):
                if not self.has_block(m, expand) and expand not in missing.setdefault(m, []):
                    missing[m].append(expand)
        return {m: sorted(v) for m, v in missing.items() if v}

    def distill(self, wanted: dict[int, list[tuple[int, ...]]], progress: Optional[ProgressFn] = None,
                should_stop: Optional[StopFn] = None) -> int:
        """Distil the given blocks per stage, persisting each chunk before the next; returns the count."""
        total = sum(len(v) for v in wanted.values())
        done = 0
        stages = self.space.num_stages
        for stage, all_expands in sorted(wanted.items()):
            # A group at a time: each block is trained as in any other group (the engines' results do
            # not depend on a block's companions), and only a group's blocks are in memory.
            for start in range(0, len(all_expands), self.distill_group):
                expands = all_expands[start:start + self.distill_group]
                report(progress, done / max(total, 1),
                       f"distilling: {done}/{total} blocks, preparing {len(expands)} of stage {stage + 1}/{stages}")
                blocks = {expand: self.initial_block(stage, expand) for expand in expands}

                def persist(chunk: dict, stage: int = stage, blocks: dict = blocks) -> None:
                    nonlocal done
                    for expand, stats in chunk.items():
                        atomic_save(blocks[expand].state_dict(), self.block_path(stage, expand), stats.to_metadata())
                        self._forget_block((stage, expand))
                        self._stats_cache.pop((stage, expand), None)  # re-read: as any other process reads it
                    done += len(chunk)
                    self.distilled_count += len(chunk)
                    report(progress, done / max(total, 1),
                           f"distilling: {done}/{total} blocks (stage {stage + 1}/{stages})")

                check_stop(should_stop)
                if self.recipe.engine == "stacked":
                    budget = {} if self.distill_memory_bytes is None else {"memory_budget": self.distill_memory_bytes}
                    distill_stacked(blocks, self.teacher(stage), self.recipe, should_stop, on_chunk_done=persist,
                                    **budget)
                else:
                    distill_blocks(blocks, self.teacher(stage), self.recipe, should_stop, on_chunk_done=persist)
                del blocks
                release_free_memory()  # the group's training tensors: back to the OS before the next group
        return done

    def ensure_blocks(self, archs: Iterable[Architecture], progress: Optional[ProgressFn] = None,
                      should_stop: Optional[StopFn] = None) -> int:
        """Lazy build: distil only the blocks ``archs`` need that the zoo lacks; returns the count."""
        return self.distill(self.missing_blocks(archs), progress, should_stop)

    def build_eager(self, progress: Optional[ProgressFn] = None, should_stop: Optional[StopFn] = None) -> int:
        """Distil every candidate block of every stage that is not stored yet (resumable)."""
        wanted = {
            m: [e for e in self.space.stage_blocks(m) if not self.has_block(m, e)]
            for m in range(self.space.num_stages)
        }
        return self.distill({m: v for m, v in wanted.items() if v}, progress, should_stop)

    def assemble(self, arch: Architecture) -> Network:
        """A fresh candidate network: reference prefix and head, zoo blocks (copies, trainable)."""
        arch = self.space.parse(arch)
        self.ensure_blocks([arch])
        stages = [copy.deepcopy(self.load_block(m, e)) for m, e in enumerate(arch.expand)]
        return Network(copy.deepcopy(self.reference.prefix), stages, copy.deepcopy(self.reference.head))
