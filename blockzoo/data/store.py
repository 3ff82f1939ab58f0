"""The dataset store: built-ins and uploads imported into a normalised uint8 directory.

Every dataset, whatever its source, is imported once into a *store*: a directory
``root_dir/<content_hash>/`` holding

- ``images.npy``  uint8, N×H×W×C with C = 1 (grey) or 3 (RGB), pixel values 0–255;
- ``labels.npy``  int64, N, class indices 0..K-1;
- ``is_test.npy`` bool, N, true for the held-out (test) split;
- ``meta.json``   name, format, class_names, image_shape [H, W, C], num_train, num_test,
  num_classes, content_hash, source, split, and channel_mean / channel_std (per-channel
  statistics of the training pixels scaled to 0..1, used for input normalisation).

The content hash is the SHA-256 of the image shape, the class names and the bytes of the three
arrays, so importing the same content twice reuses the existing store (its ``meta.json`` keeps
the first import's name and source; the returned ``DatasetInfo`` carries this import's name).
A store is written in a temporary directory inside ``root_dir`` and renamed into place, so it is
either complete or absent. Nothing is written outside ``root_dir``.

Importing: ``import_builtin(name, root_dir, seed=0, **options)`` imports a built-in dataset
(names and options: ``blockzoo.data.builtin``); ``import_file(path, root_dir,
filename=..., format=None, max_expanded_bytes=4 GiB)`` imports an upload (formats, detection
and refusals: ``blockzoo.data.readers``; archive safety: ``blockzoo.data.archives``). Both
decode their source into a ``blockzoo.data.decoded.Decoded``, which is checked and written here.

Labels: with class names given (``class_names``, CIFAR), labels must lie in 0..K-1. Without
them (IDX, ``npz`` without ``class_names``), the distinct label values, which must not be
negative, become the classes in increasing order and are named by their value (EMNIST letters'
1..26 become classes 0..25 named "1".."26"). Every class needs at least one training image, and
a dataset needs at least two and at most ``MAX_CLASSES`` classes; labels must fit int64.

Memory: an import holds the decoded pixels once (readers allocate each array once, from its
header, and read into it), plus bounded scratch: the store is hashed, counted and written a
chunk at a time, and a source's train and test images are written one after the other rather
than joined.

Splits: a source's own test split is kept. A source without one gets a seeded, class-stratified
split: ``test_fraction`` (default 1/6) of each class is held out, at least one image of each
class stays in training.

Every refusal is a ``DatasetError`` (a ``ValueError``, defined in ``blockzoo.data.archives`` and
importable from ``blockzoo.data``) that says what is wrong and what is accepted.

Torch helpers (torch is imported only when they are called): ``to_tensor_split`` turns a split
into a normalised float tensor N×C×S×S; ``shuffled_batches`` yields seeded index batches;
``augment`` does random crop and horizontal flip on a batch.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..files import file_sha256
from .archives import DEFAULT_MAX_EXPANDED_BYTES, DatasetError
from .builtin import load_builtin
from .decoded import Decoded, stratified_sample
from .readers import read_upload

if TYPE_CHECKING:
    import torch

__all__ = [
    "DatasetInfo", "DatasetStore", "augment", "channel_stats", "content_hash", "import_builtin",
    "import_file", "open_store", "shuffled_batches", "to_tensor_split",
]

Split = Literal["train", "test", "all"]

DEFAULT_TEST_FRACTION = 1 / 6
MAX_CLASSES = 100_000  # as the cost API's num_classes; a class is a column of the network's head
_MAX_LABEL = np.iinfo(np.int64).max
STORE_VERSION = 1
_HASH_DOMAIN = b"blockzoo-dataset-store-v1\x00"
_TEMP_PREFIX = ".import-"


# ---------------------------------------------------------------------------------------------
# Public types


@dataclass(frozen=True)
class DatasetInfo:
    """What the service needs to know about an imported dataset."""

    content_hash: str
    path: Path
    name: str
    format: str
    num_train: int
    num_test: int
    num_classes: int
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]  # (H, W, C)

    def to_dict(self) -> dict[str, Any]:
        return {
            "content_hash": self.content_hash, "path": str(self.path), "name": self.name,
            "format": self.format, "num_train": self.num_train, "num_test": self.num_test,
            "num_classes": self.num_classes, "class_names": list(self.class_names),
            "image_shape": list(self.image_shape),
        }


@dataclass
class DatasetStore:
    """An opened store. `images` is memory-mapped and read-only."""

    path: Path
    images: np.ndarray  # uint8 N×H×W×C
    labels: np.ndarray  # int64 N
    is_test: np.ndarray  # bool N
    class_names: tuple[str, ...]
    meta: dict[str, Any] = field(repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    @property
    def info(self) -> DatasetInfo:
        return _info_from_meta(self.path, self.meta)

    def indices(self, split: Split) -> np.ndarray:
        """Positions of the images of `split` ("train", "test" or "all"), increasing."""
        if split == "train":
            return np.flatnonzero(~self.is_test)
        if split == "test":
            return np.flatnonzero(self.is_test)
        if split == "all":
            return np.arange(len(self.labels))
        raise ValueError(f"unknown split {split!r}; accepted are 'train', 'test' and 'all'")

    def train(self) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of the training split, as copies."""
        index = self.indices("train")
        return self.images[index], self.labels[index]

    def test(self) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of the test split, as copies."""
        index = self.indices("test")
        return self.images[index], self.labels[index]


# ---------------------------------------------------------------------------------------------
# Imports: built-ins and uploads


def import_builtin(
    name: str,
    root_dir: Path | str,
    *,
    seed: int = 0,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    **options: Any,
) -> DatasetInfo:
    """Import a built-in dataset into `root_dir` (names and options: ``blockzoo.data.builtin``)."""
    chosen, decoded = load_builtin(name, seed, options)
    source = {"kind": "builtin", "builtin": name, "options": chosen, "seed": seed}
    return _write_store(decoded, Path(root_dir), name, "builtin", source, seed, test_fraction)


def import_file(
    path: Path | str,
    root_dir: Path | str,
    *,
    filename: str | None = None,
    format: str | None = None,
    name: str | None = None,
    max_expanded_bytes: int = DEFAULT_MAX_EXPANDED_BYTES,
    seed: int = 0,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> DatasetInfo:
    """Import an uploaded file into `root_dir`.

    `filename` is the name the user gave the upload (the dataset's default name);
    `format` forces a reader instead of detection; `seed` and `test_fraction` shape the split
    of sources without a test split.
    """
    path = Path(path)
    filename = filename or path.name
    detected, decoded = read_upload(path, filename, format, max_expanded_bytes)
    source = {"kind": "upload", "filename": filename, "sha256": file_sha256(path),
              "bytes": path.stat().st_size}
    return _write_store(decoded, Path(root_dir), name or _dataset_name(filename), detected, source,
                        seed, test_fraction)


def _dataset_name(filename: str) -> str:
    name = PurePosixPath(filename.replace("\\", "/")).name
    for suffix in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip", ".npz", ".gz"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name or "dataset"


# ---------------------------------------------------------------------------------------------
# From decoded arrays to a store


def _to_class_indices(decoded: Decoded) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Labels as int64 class indices 0..K-1 for train and test, and the class names."""
    parts = [("training", decoded.train.labels)]
    if decoded.test is not None:
        parts.append(("test", decoded.test.labels))
    for split, labels in parts:
        negative = np.flatnonzero(labels < 0) if labels.dtype.kind == "i" else np.array([], dtype=np.int64)
        if negative.size:
            raise DatasetError(
                f"{split} label {int(labels[negative[0]])} at position {int(negative[0])} is negative; "
                "accepted are integer labels ≥ 0"
            )
        # uint64 labels past int64 would wrap around to negative class values.
        huge = np.flatnonzero(labels > _MAX_LABEL) if labels.dtype.kind == "u" and labels.itemsize == 8 else []
        if len(huge):
            raise DatasetError(
                f"{split} label {int(labels[huge[0]])} at position {int(huge[0])} is too large; "
                f"accepted are integer labels from 0 to {_MAX_LABEL}"
            )
    if decoded.class_names is not None:
        names = decoded.class_names
        for split, labels in parts:
            outside = np.flatnonzero(labels >= len(names))
            if outside.size:
                raise DatasetError(
                    f"{split} label {int(labels[outside[0]])} at position {int(outside[0])} is out of "
                    f"range; accepted are labels 0..{len(names) - 1}, one per class name"
                )
        converted = [labels.astype(np.int64) for _, labels in parts]
    else:
        values = np.unique(np.concatenate([labels.astype(np.int64) for _, labels in parts]))
        names = [str(value) for value in values.tolist()]
        converted = [np.searchsorted(values, labels.astype(np.int64)) for _, labels in parts]
    if len(names) > MAX_CLASSES:
        raise DatasetError(
            f"the dataset has {len(names)} classes; accepted are at most {MAX_CLASSES} classes"
        )
    if len(set(names)) != len(names) or any(not name for name in names):
        raise DatasetError(
            "class names must be unique and non-empty; accepted is one distinct name per class"
        )
    return converted[0], converted[1] if len(converted) > 1 else None, names


@dataclass
class _Finalised:
    """A checked dataset ready to store. The images stay in the parts the reader decoded (train,
    then test), written and hashed one after the other: joining them would hold the pixels twice."""

    parts: list[np.ndarray]  # uint8 N_i×H×W×C, C = 1 or 3, C-contiguous
    labels: np.ndarray       # int64 N
    is_test: np.ndarray      # bool N
    class_names: list[str]
    split: dict[str, Any]

    @property
    def shape(self) -> tuple[int, ...]:
        return (sum(len(part) for part in self.parts), *self.parts[0].shape[1:])


def _finalise(decoded: Decoded, seed: int, test_fraction: float) -> _Finalised:
    """Check the decoded dataset and return it as labels, split and image parts."""
    if not 0 < test_fraction < 1:
        raise DatasetError(
            f"test_fraction={test_fraction!r} is invalid; accepted is a number between 0 and 1"
        )
    num_train = len(decoded.train.labels)
    num_test = 0 if decoded.test is None else len(decoded.test.labels)
    if num_train == 0:
        raise DatasetError(
            "the dataset has no training images; accepted are datasets with training images of at "
            "least two classes"
        )
    if decoded.test is not None and num_test == 0:
        raise DatasetError(
            "the test split is empty; accepted are a non-empty test split, or none (then a seeded, "
            "stratified part of the training images is held out)"
        )
    train_labels, test_labels, class_names = _to_class_indices(decoded)
    if len(class_names) < 2:
        raise DatasetError(
            f"the dataset has a single class ({class_names[0]!r}); accepted are datasets with at "
            "least two classes"
        )
    present = np.bincount(train_labels, minlength=len(class_names))
    if (present == 0).any():
        missing = class_names[int(np.flatnonzero(present == 0)[0])]
        raise DatasetError(
            f"class {missing!r} has no training images; accepted are datasets where every class has "
            "training images"
        )
    if decoded.test is None:
        parts, labels = [decoded.train.images], train_labels
        num_held_out = int(round(len(labels) * test_fraction))
        held_out = stratified_sample(labels, num_held_out, np.random.default_rng(seed), keep_one_out=True)
        is_test = np.zeros(len(labels), dtype=bool)
        is_test[held_out] = True
        split = {"kind": "stratified", "seed": seed, "test_fraction": test_fraction}
    else:
        parts = [decoded.train.images, decoded.test.images]
        labels = np.concatenate([train_labels, test_labels])
        is_test = np.concatenate([np.zeros(num_train, dtype=bool), np.ones(num_test, dtype=bool)])
        split = {"kind": "source"}
    for images in parts:
        height, width, channels = images.shape[1:]
        if images.dtype != np.uint8 or channels not in (1, 3) or min(height, width) < 1:
            raise DatasetError(
                f"images are {images.dtype} {images.shape}; accepted are uint8 N×H×W×C, C = 1 or 3"
            )
    return _Finalised([np.ascontiguousarray(images) for images in parts], labels.astype(np.int64), is_test,
                      class_names, split)


def content_hash(images: np.ndarray, labels: np.ndarray, is_test: np.ndarray,
                 class_names: list[str] | tuple[str, ...]) -> str:
    """SHA-256 over a canonical encoding of the shape, class names and the three arrays."""
    return _content_hash([images], tuple(images.shape), labels, is_test, class_names)


def _content_hash(parts: list[np.ndarray], shape: tuple[int, ...], labels: np.ndarray, is_test: np.ndarray,
                  class_names: list[str] | tuple[str, ...]) -> str:
    """`content_hash` of the images that `parts` make end to end (`shape`), without joining them."""
    digest = hashlib.sha256(_HASH_DOMAIN)
    header = {"image_shape": list(shape), "class_names": list(class_names)}
    digest.update(json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\x00")
    for images in parts:
        step = _rows_per_chunk(images)  # a memory-mapped store is read in pieces
        for start in range(0, len(images), step):
            digest.update(memoryview(np.ascontiguousarray(images[start:start + step], dtype=np.uint8)).cast("B"))
    digest.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    digest.update(np.ascontiguousarray(is_test, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def _write_store(decoded: Decoded, root_dir: Path, name: str, format: str, source: dict[str, Any],
                 seed: int, test_fraction: float) -> DatasetInfo:
    data = _finalise(decoded, seed, test_fraction)
    del decoded  # the parts hold the pixels now
    digest = _content_hash(data.parts, data.shape, data.labels, data.is_test, data.class_names)
    root_dir.mkdir(parents=True, exist_ok=True)
    final = root_dir / digest
    if (final / "meta.json").is_file():
        # Same content already stored (perhaps from another upload): reuse it, but describe this
        # import by its own name and format rather than the first importer's.
        return replace(open_store(final).info, name=name, format=format)
    train_rows, offset = [], 0
    for images in data.parts:
        train_rows.append(~data.is_test[offset:offset + len(images)])
        offset += len(images)
    mean, std = _pixel_moments(data.parts, train_rows)
    meta = {
        "store_version": STORE_VERSION, "name": name, "format": format, "class_names": data.class_names,
        "image_shape": list(data.shape[1:]), "num_train": int((~data.is_test).sum()),
        "num_test": int(data.is_test.sum()), "num_classes": len(data.class_names), "content_hash": digest,
        "source": source, "split": data.split,
        # Inputs are normalised with these at training and at inference after export.
        "channel_mean": mean.tolist(), "channel_std": std.tolist(),
    }
    temporary = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=root_dir))
    try:
        _save_parts(temporary / "images.npy", data.parts, data.shape)
        for filename, array in (("labels.npy", data.labels), ("is_test.npy", data.is_test)):
            with open(temporary / filename, "wb") as file:
                np.save(file, array, allow_pickle=False)
                file.flush()
                os.fsync(file.fileno())
        with open(temporary / "meta.json", "w", encoding="utf-8") as file:
            json.dump(meta, file, indent=2, ensure_ascii=False)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.rename(temporary, final)
        except OSError:
            if not (final / "meta.json").is_file():
                raise
            shutil.rmtree(temporary)  # a concurrent import of the same content won the race
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return _info_from_meta(final, meta)


def _save_parts(path: Path, parts: list[np.ndarray], shape: tuple[int, ...]) -> None:
    """What ``np.save`` writes for the images `parts` make end to end, written part by part."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
              "shape": tuple(shape)}
    with open(path, "wb") as file:
        np.lib.format.write_array_header_1_0(file, header)
        for images in parts:
            images.tofile(file)
        file.flush()
        os.fsync(file.fileno())


def open_store(path: Path | str, *, verify: bool = False) -> DatasetStore:
    """Open a store written by `import_builtin` / `import_file`; `verify` re-checks its hash."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        images = np.load(path / "images.npy", mmap_mode="r", allow_pickle=False)
        labels = np.load(path / "labels.npy", allow_pickle=False)
        is_test = np.load(path / "is_test.npy", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DatasetError(
            f"{path} is not a readable dataset store ({error}); accepted is a directory written by "
            "import_builtin or import_file"
        ) from None
    store = DatasetStore(path, images, labels, is_test, tuple(meta["class_names"]), meta)
    consistent = (
        images.ndim == 4 and images.dtype == np.uint8 and labels.shape == is_test.shape == images.shape[:1]
        and list(images.shape[1:]) == meta["image_shape"]
    )
    if not consistent or (
        verify and content_hash(images, labels, is_test, meta["class_names"]) != meta["content_hash"]
    ):
        raise DatasetError(f"the dataset store {path} is damaged; re-import the dataset")
    return store


def _info_from_meta(path: Path, meta: Mapping[str, Any]) -> DatasetInfo:
    return DatasetInfo(
        content_hash=meta["content_hash"], path=path, name=meta["name"], format=meta["format"],
        num_train=meta["num_train"], num_test=meta["num_test"], num_classes=meta["num_classes"],
        class_names=tuple(meta["class_names"]),
        image_shape=tuple(meta["image_shape"]),  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------------------------
# Torch helpers for training, distillation and proxies (torch is imported on call)


def channel_stats(store: DatasetStore) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of the training images, pixel values in 0..1.

    Measured once at import (``meta.json``: channel_mean, channel_std).
    """
    if "channel_mean" in store.meta and "channel_std" in store.meta:
        return (np.array(store.meta["channel_mean"], dtype=np.float32),
                np.array(store.meta["channel_std"], dtype=np.float32))
    return _pixel_moments([store.images], [~store.is_test])


_CHUNK_BYTES = 1 << 20  # pixels hashed or counted per step: bounded scratch memory, whatever the dataset


def _rows_per_chunk(images: np.ndarray) -> int:
    return max(1, _CHUNK_BYTES // max(1, math.prod(images.shape[1:])))


def _pixel_moments(parts: list[np.ndarray], rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (pixels scaled to 0..1) of the images ``parts[i][rows[i]]``.

    A histogram of the 256 levels gives exact moments without a float copy of the images; it is
    counted a chunk of rows at a time, since counting widens the pixels to int64.
    """
    channels = parts[0].shape[-1]
    counts = np.zeros((channels, 256), dtype=np.int64)
    for images, selected in zip(parts, rows):
        step = _rows_per_chunk(images)
        for start in range(0, len(images), step):
            chunk = images[start:start + step][selected[start:start + step]]
            for channel in range(channels):
                counts[channel] += np.bincount(chunk[..., channel].ravel(), minlength=256)
    levels = np.arange(256) / 255
    means, stds = [], []
    for channel in range(channels):
        histogram = counts[channel] / counts[channel].sum()
        mean = float(histogram @ levels)
        means.append(mean)
        stds.append(max(math.sqrt(float(histogram @ (levels - mean) ** 2)), 1e-6))
    return np.array(means, dtype=np.float32), np.array(stds, dtype=np.float32)


def to_tensor_split(store: DatasetStore, split: Split, image_size: int | None = None,
                    device: str | torch.device = "cpu", *, chunk: int = 4096
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """One split as (x float32 N×C×S×S, y int64 N) on `device`.

    Pixels are scaled to 0..1, resized once to `image_size` (bilinear, antialiased; None keeps
    the stored size, non-square images become square), then normalised with the training
    split's per-channel mean and std (`channel_stats`, measured at the stored size).
    """
    import torch
    import torch.nn.functional as F

    index = store.indices(split)
    height, width, channels = store.image_shape
    size = (height, width) if image_size is None else (image_size, image_size)
    mean, std = (torch.from_numpy(stat).to(device).view(1, channels, 1, 1) for stat in channel_stats(store))
    # uint8 travels to the device (4× smaller than float) and is converted there, chunk by chunk.
    pixels = torch.from_numpy(np.ascontiguousarray(store.images[index])).to(device)
    x = torch.empty((len(index), channels, *size), dtype=torch.float32, device=device)
    for start in range(0, len(index), chunk):
        block = pixels[start:start + chunk].permute(0, 3, 1, 2).float().div_(255)
        if size != (height, width):
            block = F.interpolate(block, size=size, mode="bilinear", antialias=True, align_corners=False)
        x[start:start + chunk] = (block - mean) / std
    y = torch.from_numpy(store.labels[index].astype(np.int64)).to(device)
    return x, y


def shuffled_batches(num_items: int, batch_size: int, generator: torch.Generator, *,
                     drop_last: bool = False, device: str | torch.device | None = None
                     ) -> Iterator[torch.Tensor]:
    """Index batches of one epoch, in an order drawn from `generator` (same seed, same batches)."""
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = torch.randperm(num_items, generator=generator, device=generator.device)
    for start in range(0, num_items, batch_size):
        batch = order[start:start + batch_size]
        if drop_last and len(batch) < batch_size:
            return
        yield batch if device is None else batch.to(device)


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 2, flip: bool = True) -> torch.Tensor:
    """Random crop (zero-pad by `pad`, shift each sample) and random horizontal flip of a batch.

    `x` is N×C×H×W and already normalised, so the zero padding is the mean colour. Randomness
    comes from `generator` only, drawn on its device, so a seed fixes the result.
    """
    import torch
    import torch.nn.functional as F

    count, channels, height, width = x.shape
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        shifts = torch.randint(0, 2 * pad + 1, (2, count), generator=generator,
                               device=generator.device).to(x.device)
        rows = (shifts[0, :, None] + torch.arange(height, device=x.device))[:, None, :, None]
        cols = (shifts[1, :, None] + torch.arange(width, device=x.device))[:, None, None, :]
        x = padded.gather(2, rows.expand(count, channels, height, width + 2 * pad))
        x = x.gather(3, cols.expand(count, channels, height, width))
    if flip:
        mirrored = torch.rand(count, generator=generator, device=generator.device).to(x.device) < 0.5
        x = torch.where(mirrored[:, None, None, None], x.flip(3), x)
    return x
