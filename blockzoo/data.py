"""Datasets: built-ins, upload readers, and the normalised uint8 store that training reads.

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

Built-in datasets (``import_builtin(name, root_dir, seed=0, **options)``)
-------------------------------------------------------------------------
``digits``
    scikit-learn's bundled 8×8 handwritten digits (1797 images, 10 classes); the 0–16 values
    are scaled to 0–255.
``fashion-mnist``
    Fashion-MNIST (28×28 grey, 10 classes, official 60 000/10 000 train/test split) from the
    Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``, or the
    directory in the ``BLOCKZOO_FASHION_MNIST_DIR`` environment variable). Option
    ``train_limit``: keep a seeded, class-stratified subset of that many training images.
``synthetic``
    Seeded, learnable images: each class is a smooth random pattern, each image that pattern
    shifted by up to a pixel, with random contrast and Gaussian noise. Options ``num_classes``
    (10), ``num_images`` (2000), ``image_size`` (16), ``channels`` (1 or 3), ``noise`` (0.15).

Uploads (``import_file(path, root_dir, filename=..., format=None, max_expanded_bytes=4 GiB)``)
----------------------------------------------------------------------------------------------
The format is detected from the content; ``format=`` forces one of ``npz``, ``idx``,
``imagefolder``, ``cifar-10``, ``cifar-100``. Archives may be .zip, .tar, .tar.gz/.tgz,
.tar.bz2 or .tar.xz.

``npz`` — a NumPy ``.npz`` (``np.savez`` or ``np.savez_compressed``) with arrays
    ``x`` uint8 N×H×W or N×H×W×C (C = 1 or 3) and ``y`` integer N (or N×1);
    optionally ``x_test`` and ``y_test`` (both or neither) and ``class_names`` (strings, one per
    class; then labels must be 0..len(class_names)-1). Pickled (object) arrays are refused.
``idx`` — the MNIST family (MNIST, Fashion-MNIST, KMNIST, EMNIST). Images and labels are two
    files, so upload them packed in one archive: ``train-images-idx3-ubyte[.gz]`` and
    ``train-labels-idx1-ubyte[.gz]``, optionally ``t10k-images-idx3-ubyte[.gz]`` and
    ``t10k-labels-idx1-ubyte[.gz]``. Any name prefix works (``emnist-letters-train-…``), as do
    ``.`` or ``_`` instead of ``-`` (``train-images.idx3-ubyte``); a prefix containing ``t10k`` or
    ``test`` marks the test split. Images must be uint8 N×H×W (magic 0x00000803), labels uint8 N
    (magic 0x00000801); each file may be gzip-compressed or raw.
``imagefolder`` — a .zip or tar archive of PNG/JPEG images, one folder per class
    (``cats/001.png``), optionally below top-level ``train/`` and ``test/`` folders
    (``train/cats/001.png``, ``test/cats/900.png``). One enclosing folder around all of it is
    fine. Class names are the folder names, sorted. All images must have the same width and
    height (they are not resized). If every image is grey (L, LA, 1, I) the store is grey;
    otherwise every image is converted to RGB. Alpha is dropped.
``cifar-10`` — the CIFAR-10 *binary version* archive as distributed (``cifar-10-binary.tar.gz``):
    ``data_batch_1.bin`` … ``data_batch_5.bin``, ``test_batch.bin`` and, optionally,
    ``batches.meta.txt`` (class names, one per line). Records are 1 label byte + 3072 bytes.
``cifar-100`` — the CIFAR-100 binary version (``cifar-100-binary.tar.gz``): ``train.bin``,
    ``test.bin`` and, optionally, ``fine_label_names.txt``. Records are coarse label, fine label,
    3072 bytes; the 100 fine labels are used.

The CIFAR *python version* (pickle files) is refused: user data is never unpickled.

Labels: with class names given (``class_names``, CIFAR), labels must lie in 0..K-1. Without
them (IDX, ``npz`` without ``class_names``), the distinct label values, which must not be
negative, become the classes in increasing order and are named by their value (EMNIST letters'
1..26 become classes 0..25 named "1".."26"). Every class needs at least one training image, and
a dataset needs at least two classes.

Splits: a source's own test split is kept. A source without one gets a seeded, class-stratified
split: ``test_fraction`` (default 1/6) of each class is held out, at least one image of each
class stays in training.

Safety: archives are read in memory, never extracted; unsafe member names, links, device files,
encrypted members and anything expanding past ``max_expanded_bytes`` are refused (see
``blockzoo.archives``). Decoded pixels count against the same cap. Every refusal is a
``DatasetError`` (a ``ValueError``) that says what is wrong and what is accepted.

Torch helpers (torch is imported only when they are called): ``to_tensor_split`` turns a split
into a normalised float tensor N×C×S×S; ``shuffled_batches`` yields seeded index batches;
``augment`` does random crop and horizontal flip on a batch.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import shutil
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import numpy as np

from blockzoo.archives import (
    DEFAULT_MAX_EXPANDED_BYTES,
    Archive,
    DatasetError,
    ExpansionBudget,
    gunzip_limited,
    open_archive,
    sniff_archive,
)

if TYPE_CHECKING:
    import torch

__all__ = [
    "BUILTIN_DATASETS", "BuiltinDataset", "DatasetError", "DatasetInfo", "DatasetStore",
    "UPLOAD_FORMATS", "augment", "channel_stats", "content_hash", "import_builtin", "import_file",
    "open_store", "shuffled_batches", "to_tensor_split",
]

UploadFormat = Literal["npz", "idx", "imagefolder", "cifar-10", "cifar-100"]
UPLOAD_FORMATS: tuple[str, ...] = ("npz", "idx", "imagefolder", "cifar-10", "cifar-100")
Split = Literal["train", "test", "all"]

DEFAULT_TEST_FRACTION = 1 / 6
STORE_VERSION = 1
_HASH_DOMAIN = b"blockzoo-dataset-store-v1\x00"
_TEMP_PREFIX = ".import-"

_ACCEPTED_UPLOADS = (
    "accepted are an .npz with x (uint8 N×H×W[×C]) and y (integers); an archive of IDX files "
    "(train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz], optional t10k-*); an archive "
    "of PNG/JPEG images with one folder per class; or the CIFAR-10/100 binary version (.tar.gz)"
)


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


@dataclass(frozen=True)
class BuiltinDataset:
    """A built-in dataset: its description and the options it accepts, with their defaults."""

    name: str
    description: str
    options: Mapping[str, Any]


# ---------------------------------------------------------------------------------------------
# Decoded datasets, before they become a store


@dataclass
class _Labelled:
    """Images and labels of one split, as a reader decoded them."""

    images: np.ndarray  # uint8 N×H×W×C
    labels: np.ndarray  # integer N, raw values (not yet class indices)


@dataclass
class _Decoded:
    train: _Labelled
    test: _Labelled | None
    class_names: list[str] | None  # None: the distinct label values become the classes


# ---------------------------------------------------------------------------------------------
# Built-in datasets

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
    "Ankle boot",
)

BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "digits": BuiltinDataset(
        "digits", "scikit-learn's bundled 8×8 handwritten digits, 1797 images, 10 classes", {}
    ),
    "fashion-mnist": BuiltinDataset(
        "fashion-mnist",
        "Fashion-MNIST, 28×28 grey, 10 classes, 60 000 train / 10 000 test (Debian package "
        "dataset-fashion-mnist)",
        {"train_limit": None},
    ),
    "synthetic": BuiltinDataset(
        "synthetic",
        "seeded, learnable class patterns with noise, for tests",
        {"num_classes": 10, "num_images": 2000, "image_size": 16, "channels": 1, "noise": 0.15},
    ),
}


def import_builtin(
    name: str,
    root_dir: Path | str,
    *,
    seed: int = 0,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    **options: Any,
) -> DatasetInfo:
    """Import a built-in dataset into `root_dir` (see the module docstring for names and options)."""
    if name not in BUILTIN_DATASETS:
        raise DatasetError(
            f"unknown built-in dataset {name!r}; accepted are {', '.join(sorted(BUILTIN_DATASETS))}"
        )
    spec = BUILTIN_DATASETS[name]
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        accepted = ", ".join(sorted(spec.options)) or "none"
        raise DatasetError(
            f"unknown option(s) {', '.join(unknown)} for {name!r}; accepted options: {accepted}"
        )
    chosen = {**spec.options, **options}
    if name == "digits":
        decoded = _load_digits()
    elif name == "fashion-mnist":
        decoded = _load_fashion_mnist(chosen["train_limit"], seed)
    else:
        decoded = _make_synthetic(seed=seed, **chosen)
    source = {"kind": "builtin", "builtin": name, "options": chosen, "seed": seed}
    return _write_store(decoded, Path(root_dir), name, "builtin", source, seed, test_fraction)


def _load_digits() -> _Decoded:
    from sklearn.datasets import load_digits  # scikit-learn ships these; no download happens

    digits = load_digits()
    # The 0..16 grey levels stretched to 0..255.
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    return _Decoded(_Labelled(images, digits.target), None, [str(label) for label in range(10)])


def _load_fashion_mnist(train_limit: int | None, seed: int) -> _Decoded:
    num_classes, full_train_size = len(FASHION_MNIST_CLASSES), 60_000
    if train_limit is not None and (
        isinstance(train_limit, bool) or not isinstance(train_limit, int)
        or not num_classes <= train_limit <= full_train_size
    ):
        raise DatasetError(
            f"train_limit={train_limit!r} is invalid; accepted are None or an integer from "
            f"{num_classes} to {full_train_size}"
        )
    directory = Path(os.environ.get("BLOCKZOO_FASHION_MNIST_DIR", FASHION_MNIST_DIR))
    files = {
        (split, kind): directory / f"{prefix}-{kind}-idx{ndim}-ubyte.gz"
        for split, prefix in (("train", "train"), ("test", "t10k"))
        for kind, ndim in (("images", 3), ("labels", 1))
    }
    missing = [path.name for path in files.values() if not path.is_file()]
    if missing:
        raise DatasetError(
            f"fashion-mnist is not installed: {', '.join(missing)} missing in {directory}; install "
            "it with `apt-get install dataset-fashion-mnist` (or set BLOCKZOO_FASHION_MNIST_DIR to a "
            "directory holding the four .gz IDX files), or upload the IDX files instead"
        )
    budget = ExpansionBudget(DEFAULT_MAX_EXPANDED_BYTES)
    splits = {}
    for split in ("train", "test"):
        arrays = {
            kind: _parse_idx(files[split, kind].read_bytes(), files[split, kind].name, kind, budget)
            for kind in ("images", "labels")
        }
        splits[split] = _pair_idx(arrays["images"], arrays["labels"], files[split, "images"].name,
                                  files[split, "labels"].name)
    train = splits["train"]
    if train_limit is not None:
        keep = _stratified_sample(train.labels, train_limit, np.random.default_rng(seed))
        train = _Labelled(train.images[keep], train.labels[keep])
    return _Decoded(train, splits["test"], list(FASHION_MNIST_CLASSES))


def _make_synthetic(
    *, seed: int, num_classes: int, num_images: int, image_size: int, channels: int, noise: float
) -> _Decoded:
    _check_int_option("num_classes", num_classes, 2, 1000)
    _check_int_option("num_images", num_images, 2 * num_classes, 1_000_000)
    _check_int_option("image_size", image_size, 4, 512)
    if channels not in (1, 3) or isinstance(channels, bool):
        raise DatasetError(f"channels={channels!r} is invalid; accepted are 1 and 3")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise <= 1:
        raise DatasetError(f"noise={noise!r} is invalid; accepted is a number from 0 to 1")
    rng = np.random.default_rng(seed)
    # Each class is a coarse 4×4 grid of random levels, blown up to the image size: smooth, so
    # a shift by one pixel keeps it recognisable, and different enough between classes to learn.
    coarse = rng.uniform(0.0, 1.0, size=(num_classes, 4, 4, channels))
    upsample = np.arange(image_size) * 4 // image_size
    prototypes = coarse[:, upsample][:, :, upsample]
    labels = np.arange(num_images) % num_classes
    rng.shuffle(labels)
    shifts = rng.integers(-1, 2, size=(num_images, 2))
    rows = np.clip(np.arange(image_size)[None, :] + shifts[:, :1], 0, image_size - 1)
    cols = np.clip(np.arange(image_size)[None, :] + shifts[:, 1:], 0, image_size - 1)
    images = prototypes[labels[:, None, None], rows[:, :, None], cols[:, None, :]]
    contrast = rng.uniform(0.7, 1.0, size=(num_images, 1, 1, 1))
    images = images * contrast + rng.normal(0.0, noise, size=images.shape)
    pixels = np.clip(np.round(images * 255), 0, 255).astype(np.uint8)
    return _Decoded(_Labelled(pixels, labels), None, [f"class_{label}" for label in range(num_classes)])


def _check_int_option(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DatasetError(f"{name}={value!r} is invalid; accepted is an integer from {low} to {high}")


# ---------------------------------------------------------------------------------------------
# Uploads


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
    if format is not None and format not in UPLOAD_FORMATS:
        raise DatasetError(f"unknown format {format!r}; accepted are {', '.join(UPLOAD_FORMATS)}")
    if not path.is_file():
        raise DatasetError(f"upload {filename!r} is not a file; accepted is a path to an uploaded file")
    if path.stat().st_size == 0:
        raise DatasetError(f"upload {filename!r} is empty; {_ACCEPTED_UPLOADS}")
    budget = ExpansionBudget(max_expanded_bytes)
    kind = sniff_archive(path)
    if kind is None:
        _refuse_single_file(path, filename)
    archive = open_archive(path, kind, budget)
    _refuse_pickles(archive)
    detected = format or _detect_format(archive, filename)
    decoded = _READERS[detected](archive)
    source = {"kind": "upload", "filename": filename, "sha256": _file_sha256(path),
              "bytes": path.stat().st_size}
    return _write_store(decoded, Path(root_dir), name or _dataset_name(filename), detected, source,
                        seed, test_fraction)


def _refuse_single_file(path: Path, filename: str) -> NoReturn:
    """A lone file is never a dataset; say what it looks like and how to upload it instead."""
    with open(path, "rb") as file:
        head = file.read(4096)
    if _looks_pickled(head):
        raise DatasetError(_pickle_message(filename))
    if head.startswith(b"\x93NUMPY"):
        raise DatasetError(
            f"{filename!r} is a single .npy array; accepted is an .npz holding x and y "
            "(np.savez('data.npz', x=images, y=labels))"
        )
    if head.startswith(b"\x1f\x8b"):
        try:
            # Only the first bytes matter, and `head` may be a cut-off prefix of the stream.
            head = zlib.decompressobj(wbits=31).decompress(head, 64)
        except zlib.error:
            head = b""
    if len(head) >= 4 and head[:2] == b"\x00\x00" and head[2] == 0x08 and head[3] in (1, 3):
        raise DatasetError(
            f"{filename!r} is a single IDX file; an IDX dataset needs images and labels, so upload "
            "one .zip or .tar.gz holding train-images-idx3-ubyte[.gz] and "
            "train-labels-idx1-ubyte[.gz] (optionally t10k-images/t10k-labels too)"
        )
    raise DatasetError(f"{filename!r} is not a recognised dataset file; {_ACCEPTED_UPLOADS}")


def _looks_pickled(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _pickle_message(what: str) -> str:
    return (
        f"{what} is a Python pickle (such as the CIFAR 'python version'); pickles are never loaded "
        "because they can run code. Accepted instead: the CIFAR-10/100 binary version "
        "(cifar-10-binary.tar.gz with data_batch_*.bin, or cifar-100-binary.tar.gz with train.bin), "
        "or an .npz of plain arrays"
    )


_IDX_NAME = re.compile(
    r"^(?P<prefix>.*?)[-_.]?(?P<kind>images|labels)[-_.]idx(?P<ndim>[13])[-_.]ubyte(?:\.gz)?$",
    re.IGNORECASE,
)
_CIFAR10_TRAIN = re.compile(r"^data_batch_(\d+)\.bin$")
_CIFAR_PICKLE_DIRS = {"cifar-10-batches-py", "cifar-100-python"}
_CIFAR_PICKLE_FILES = re.compile(r"^(data_batch_\d+|test_batch|batches\.meta)$|\.(pkl|pickle|p)$")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def _refuse_pickles(archive: Archive) -> None:
    for name in archive.names:
        if _CIFAR_PICKLE_DIRS & set(name.split("/")) or _CIFAR_PICKLE_FILES.search(PurePosixPath(name).name):
            raise DatasetError(_pickle_message(f"archive member {name!r}"))


def _detect_format(archive: Archive, filename: str) -> str:
    basenames = [PurePosixPath(name).name for name in archive.names]
    if any(name.endswith(".npy") and "/" not in name for name in archive.names):
        return "npz"
    if any(_CIFAR10_TRAIN.match(base) or base == "test_batch.bin" for base in basenames):
        return "cifar-10"
    if "train.bin" in basenames or "test.bin" in basenames:
        return "cifar-100"
    if any(_IDX_NAME.match(base) for base in basenames):
        return "idx"
    if any(PurePosixPath(base).suffix.lower() in _IMAGE_SUFFIXES for base in basenames):
        return "imagefolder"
    if not archive.names:
        raise DatasetError(f"the archive {filename!r} holds no files; {_ACCEPTED_UPLOADS}")
    raise DatasetError(
        f"could not recognise a dataset in {filename!r} (first member {archive.names[0]!r}); "
        f"{_ACCEPTED_UPLOADS}"
    )


def _dataset_name(filename: str) -> str:
    name = PurePosixPath(filename.replace("\\", "/")).name
    for suffix in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip", ".npz", ".gz"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name or "dataset"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- NPZ


def _read_npz(archive: Archive) -> _Decoded:
    keys = {"x", "y", "x_test", "y_test", "class_names"}
    present = {name[:-4] for name in archive.names if name.endswith(".npy")} & keys
    if not {"x", "y"} <= present:
        raise DatasetError(
            "the .npz lacks " + " and ".join(sorted({"x", "y"} - present)) + "; accepted is an .npz "
            "with x (uint8 N×H×W or N×H×W×C) and y (integer labels, length N), optionally x_test, "
            "y_test and class_names"
        )
    if ("x_test" in present) != ("y_test" in present):
        raise DatasetError("the .npz has only one of x_test and y_test; accepted is both or neither")
    arrays = {
        name[:-4]: _parse_npy(data, name)
        for name, data in archive.read(lambda name: name.endswith(".npy") and name[:-4] in present)
    }
    train = _npz_split(arrays["x"], arrays["y"], "x", "y")
    test = _npz_split(arrays["x_test"], arrays["y_test"], "x_test", "y_test") if "x_test" in arrays else None
    if test is not None and test.images.shape[1:] != train.images.shape[1:]:
        raise DatasetError(
            f"x_test images are {_shape_text(test.images.shape[1:])} but x images are "
            f"{_shape_text(train.images.shape[1:])}; accepted are test images of the training size"
        )
    class_names = None
    if "class_names" in arrays:
        names = arrays["class_names"]
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DatasetError(
                f"class_names has dtype {names.dtype} and shape {names.shape}; accepted is a 1-D array "
                "of strings, one per class (np.array(['cat', 'dog']))"
            )
        class_names = [
            item.decode("utf-8", errors="replace") if isinstance(item, bytes) else str(item)
            for item in names.tolist()
        ]
    return _Decoded(train, test, class_names)


def _parse_npy(data: bytes, member: str) -> np.ndarray:
    """Read a .npy held in memory without pickle, checking its size against its header."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as error:
        raise DatasetError(
            f"{member} is not a readable .npy array ({error}); accepted are arrays written by "
            "np.savez / np.savez_compressed"
        ) from None
    if dtype.hasobject:
        raise DatasetError(
            f"{member} holds Python objects, which need pickle and are never loaded; accepted are "
            "plain numeric arrays (uint8 images, integer labels) and string class names"
        )
    count = math.prod(shape)
    offset = stream.tell()
    needed = count * dtype.itemsize
    if len(data) - offset != needed:
        problem = "is truncated" if len(data) - offset < needed else "has extra bytes"
        raise DatasetError(
            f"{member} {problem}: its header declares {shape} {dtype} ({needed} bytes) but "
            f"{len(data) - offset} bytes follow; accepted are complete arrays written by np.savez"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return array.reshape(shape, order="F" if fortran_order else "C")


def _npz_split(x: np.ndarray, y: np.ndarray, x_name: str, y_name: str) -> _Labelled:
    if x.dtype != np.uint8:
        raise DatasetError(
            f"{x_name} has dtype {x.dtype}; accepted are uint8 images with values 0–255 "
            f"(convert with {x_name}.astype(np.uint8) after scaling)"
        )
    if x.ndim == 3:
        x = x[..., None]
    elif x.ndim != 4 or x.shape[-1] not in (1, 3):
        hint = ""
        if x.ndim == 4 and x.shape[1] in (1, 3):
            hint = f" (channels-first? use {x_name}.transpose(0, 2, 3, 1))"
        raise DatasetError(
            f"{x_name} has shape {x.shape}; accepted are N×H×W or N×H×W×C with C = 1 or 3{hint}"
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # Keras-style N×1 labels
    if y.dtype.kind not in "iu" or y.ndim != 1:
        raise DatasetError(
            f"{y_name} has dtype {y.dtype} and shape {y.shape}; accepted are integer labels of shape N"
        )
    if len(x) != len(y):
        raise DatasetError(
            f"{x_name} has {len(x)} images but {y_name} has {len(y)} labels; accepted is one label per image"
        )
    return _Labelled(np.ascontiguousarray(x), y)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(size) for size in shape)


# --- IDX


def _read_idx(archive: Archive) -> _Decoded:
    groups: dict[str, dict[str, str]] = {}
    for name in archive.names:
        match = _IDX_NAME.match(PurePosixPath(name).name)
        if match:
            prefix = str(PurePosixPath(name).parent / match["prefix"])
            groups.setdefault(prefix, {})[match["kind"].lower()] = name
    if not groups:
        raise DatasetError(
            "no IDX files found; accepted is an archive holding train-images-idx3-ubyte[.gz] and "
            "train-labels-idx1-ubyte[.gz], optionally t10k-images-idx3-ubyte[.gz] and "
            "t10k-labels-idx1-ubyte[.gz]"
        )
    for prefix, files in groups.items():
        if set(files) != {"images", "labels"}:
            have = next(iter(files.values()))
            lacking = "labels" if "images" in files else "images"
            raise DatasetError(
                f"{have!r} has no matching {lacking} file; accepted are pairs such as "
                "train-images-idx3-ubyte.gz + train-labels-idx1-ubyte.gz"
            )
    by_split: dict[str, list[str]] = {"train": [], "test": []}
    for prefix in groups:
        is_test = re.search(r"t10k|test", PurePosixPath(prefix).name, re.IGNORECASE)
        by_split["test" if is_test else "train"].append(prefix)
    for split, prefixes in by_split.items():
        if len(prefixes) > 1:
            raise DatasetError(
                f"several {split} IDX pairs ({', '.join(sorted(prefixes))}); accepted is one train pair "
                "and at most one test (t10k) pair per archive"
            )
    if not by_split["train"]:
        raise DatasetError(
            "only a test (t10k) IDX pair was found; accepted is a train pair "
            "(train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz]), with or without a test pair"
        )
    wanted = {name: kind for files in groups.values() for kind, name in files.items()}
    arrays = {
        name: _parse_idx(data, name, wanted[name], archive.budget)
        for name, data in archive.read(lambda name: name in wanted)
    }
    splits: dict[str, _Labelled] = {}
    for split, prefixes in by_split.items():
        if prefixes:
            files = groups[prefixes[0]]
            splits[split] = _pair_idx(arrays[files["images"]], arrays[files["labels"]],
                                      files["images"], files["labels"])
    return _Decoded(splits["train"], splits.get("test"), None)


_IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}
_IDX_EXPECTED = {"images": "uint8 images N×H×W", "labels": "uint8 labels N"}


def _parse_idx(data: bytes, member: str, kind: str, budget: ExpansionBudget) -> np.ndarray:
    """Parse one IDX file (gzip-compressed or raw): uint8 images N×H×W or uint8 labels N."""
    if data[:2] == b"\x1f\x8b":
        data = gunzip_limited(data, budget, member)
    expected = _IDX_MAGIC[kind]
    article = "an" if kind == "images" else "a"
    accepted = f"accepted is magic 0x{expected:08x} ({_IDX_EXPECTED[kind]}) for {article} {kind} file"
    if len(data) < 4:
        raise DatasetError(f"{member} is truncated ({len(data)} bytes, no IDX header); {accepted}")
    magic = struct.unpack(">I", data[:4])[0]
    if magic != expected:
        raise DatasetError(f"{member} has wrong IDX magic 0x{magic:08x}; {accepted}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{member} is truncated inside its IDX header; {accepted}")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    needed = math.prod(shape)
    if len(data) - header != needed:
        problem = "is truncated" if len(data) - header < needed else "has extra bytes"
        raise DatasetError(
            f"{member} {problem}: its header declares {_shape_text(shape)} = {needed} bytes but "
            f"{len(data) - header} follow; accepted are complete IDX files ({_IDX_EXPECTED[kind]})"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _pair_idx(images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str) -> _Labelled:
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_name} has {len(images)} images but {labels_name} has {len(labels)} labels; "
            "accepted are images and labels files of the same split, one label per image"
        )
    return _Labelled(images[..., None], labels)


# --- CIFAR binary


@dataclass(frozen=True)
class _CifarLayout:
    format: str
    label_byte: int  # position of the label used in each record
    record_bytes: int
    num_classes: int
    names_file: str


_CIFAR = {
    "cifar-10": _CifarLayout("cifar-10", 0, 1 + 3072, 10, "batches.meta.txt"),
    "cifar-100": _CifarLayout("cifar-100", 1, 2 + 3072, 100, "fine_label_names.txt"),
}


def _read_cifar(archive: Archive, layout: _CifarLayout) -> _Decoded:
    by_base: dict[str, str] = {}
    for name in archive.names:
        base = PurePosixPath(name).name
        if base in by_base:
            raise DatasetError(
                f"{base} appears twice ({by_base[base]!r} and {name!r}); accepted is one "
                f"{layout.format} binary dataset per archive"
            )
        by_base[base] = name
    if layout.format == "cifar-10":
        train_bases = sorted((base for base in by_base if _CIFAR10_TRAIN.match(base)),
                             key=lambda base: int(_CIFAR10_TRAIN.match(base)[1]))  # type: ignore[index]
        test_base = "test_batch.bin"
        accepted = "data_batch_1.bin … data_batch_5.bin and test_batch.bin (+ batches.meta.txt)"
    else:
        train_bases = ["train.bin"] if "train.bin" in by_base else []
        test_base = "test.bin"
        accepted = "train.bin and test.bin (+ fine_label_names.txt)"
    if not train_bases:
        raise DatasetError(
            f"no training batches found for {layout.format}; accepted is the binary version with {accepted}"
        )
    wanted = {by_base[base] for base in [*train_bases, test_base, layout.names_file] if base in by_base}
    contents = dict(archive.read(lambda name: name in wanted))
    train_parts = [_parse_cifar(contents[by_base[base]], base, layout) for base in train_bases]
    train = _Labelled(np.concatenate([part.images for part in train_parts]),
                      np.concatenate([part.labels for part in train_parts]))
    test = _parse_cifar(contents[by_base[test_base]], test_base, layout) if test_base in by_base else None
    class_names = [str(label) for label in range(layout.num_classes)]
    if layout.names_file in by_base:
        text = contents[by_base[layout.names_file]].decode("utf-8", errors="replace")
        listed = [line.strip() for line in text.splitlines() if line.strip()]
        if len(listed) != layout.num_classes:
            raise DatasetError(
                f"{layout.names_file} lists {len(listed)} class names; accepted are exactly "
                f"{layout.num_classes}, one per line"
            )
        class_names = listed
    return _Decoded(train, test, class_names)


def _parse_cifar(data: bytes, member: str, layout: _CifarLayout) -> _Labelled:
    label_bytes = layout.record_bytes - 3072
    if not data or len(data) % layout.record_bytes:
        raise DatasetError(
            f"{member} has {len(data)} bytes, not a whole number of {layout.record_bytes}-byte "
            f"records ({label_bytes} label byte{'s' if label_bytes > 1 else ''} + 3072 pixel bytes): "
            "it is truncated or not "
            f"{layout.format} binary; accepted are the files of the {layout.format} binary version"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, layout.record_bytes)
    # Pixels are stored as three 32×32 planes (R, G, B); the store wants H×W×C.
    images = records[:, label_bytes:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return _Labelled(np.ascontiguousarray(images), records[:, layout.label_byte].copy())


# --- ImageFolder


def _read_imagefolder(archive: Archive) -> _Decoded:
    from PIL import Image, UnidentifiedImageError

    for name in archive.names:
        if PurePosixPath(name).suffix.lower() not in _IMAGE_SUFFIXES:
            raise DatasetError(
                f"archive member {name!r} is not a PNG or JPEG image; accepted in an image-folder "
                "archive are .png, .jpg and .jpeg files in class folders (class/image.png or "
                "train|test/class/image.png)"
            )
    placement = _imagefolder_placement(archive.names)
    expected_size: tuple[int, int] | None = None
    first_name = ""
    decoded: dict[str, np.ndarray] = {}
    for name, data in archive.read(lambda name: True):
        try:
            with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as image:
                if expected_size is None:
                    expected_size, first_name = image.size, name
                elif image.size != expected_size:
                    raise DatasetError(
                        f"image {name!r} is {image.size[0]}×{image.size[1]} (width×height) but the "
                        f"first image, {first_name!r}, is {expected_size[0]}×{expected_size[1]}; "
                        "accepted are images that all share one size (resize them before uploading)"
                    )
                # Charge the decoded pixels before decoding them: a tiny PNG can hold a huge image.
                archive.budget.take(image.size[0] * image.size[1] * 3, f"image {name!r}")
                grey = image.mode in ("1", "L", "LA", "I", "I;16", "F")
                decoded[name] = np.asarray(image.convert("L" if grey else "RGB"))
        except DatasetError:
            raise
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            reason = "not PNG or JPEG data" if isinstance(error, UnidentifiedImageError) else str(error)
            raise DatasetError(
                f"image {name!r} could not be decoded ({reason}); accepted are valid PNG and JPEG files"
            ) from None
    if not decoded:
        raise DatasetError(f"the archive holds no images; {_ACCEPTED_UPLOADS}")
    any_colour = any(array.ndim == 3 for array in decoded.values())
    class_names = sorted({class_name for _, class_name in placement.values()})
    class_index = {class_name: index for index, class_name in enumerate(class_names)}
    splits: dict[str, _Labelled] = {}
    for split in ("train", "test"):
        # Sorted member names make the store independent of the order inside the archive.
        names = sorted(name for name, (member_split, _) in placement.items() if member_split == split)
        if not names:
            continue
        arrays = [decoded[name] for name in names]
        if any_colour:
            arrays = [
                array if array.ndim == 3 else np.repeat(array[..., None], 3, axis=2) for array in arrays
            ]
        else:
            arrays = [array[..., None] for array in arrays]
        labels = np.array([class_index[placement[name][1]] for name in names], dtype=np.int64)
        splits[split] = _Labelled(np.stack(arrays), labels)
    if "train" not in splits:
        raise DatasetError(
            "the archive has a test/ folder but no train/ folder; accepted are class folders, "
            "optionally below train/ and test/"
        )
    return _Decoded(splits["train"], splits.get("test"), class_names)


def _imagefolder_placement(names: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """Map each member to its (split, class folder); the split is "train" without train/ test/."""
    parts = {name: name.split("/") for name in names}

    def is_split_folder(part: str) -> bool:
        return part.lower() in ("train", "test")

    # Drop enclosing folders shared by every member (a zipped "my-dataset/" directory).
    depth = 0
    while (
        all(len(path) - depth >= 3 for path in parts.values())
        and len({path[depth] for path in parts.values()}) == 1
        and not is_split_folder(next(iter(parts.values()))[depth])
    ):
        depth += 1
    placement = {}
    with_split = any(len(path) - depth == 3 and is_split_folder(path[depth]) for path in parts.values())
    for name, path in parts.items():
        relative = path[depth:]
        if with_split and len(relative) == 3 and is_split_folder(relative[0]):
            placement[name] = (relative[0].lower(), relative[1])
        elif not with_split and len(relative) == 2:
            placement[name] = ("train", relative[0])
        else:
            raise DatasetError(
                f"image {name!r} is not where an image folder expects it; accepted are "
                "class/image.png for every image, or train/class/image.png and test/class/image.png "
                "for every image"
            )
    return placement


_READERS: dict[str, Callable[[Archive], _Decoded]] = {
    "npz": _read_npz,
    "idx": _read_idx,
    "imagefolder": _read_imagefolder,
    "cifar-10": lambda archive: _read_cifar(archive, _CIFAR["cifar-10"]),
    "cifar-100": lambda archive: _read_cifar(archive, _CIFAR["cifar-100"]),
}


# ---------------------------------------------------------------------------------------------
# From decoded arrays to a store


def _stratified_sample(labels: np.ndarray, num_wanted: int, rng: np.random.Generator,
                       keep_one_out: bool = False) -> np.ndarray:
    """Seeded indices of `num_wanted` items with each class in proportion (largest remainder).

    With `keep_one_out`, at least one item of each class is left unchosen.
    """
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * num_wanted / len(labels)
    quota = np.floor(exact).astype(np.int64)
    by_remainder = np.argsort(-(exact - quota), kind="stable")
    quota[by_remainder[: num_wanted - quota.sum()]] += 1
    if keep_one_out:
        quota = np.minimum(quota, counts - 1)
    chosen = [
        rng.permutation(np.flatnonzero(labels == label))[:take] for label, take in zip(classes, quota)
    ]
    return np.sort(np.concatenate(chosen))


def _to_class_indices(decoded: _Decoded) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
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
    if len(set(names)) != len(names) or any(not name for name in names):
        raise DatasetError(
            "class names must be unique and non-empty; accepted is one distinct name per class"
        )
    return converted[0], converted[1] if len(converted) > 1 else None, names


def _finalise(decoded: _Decoded, seed: int, test_fraction: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], dict[str, Any]]:
    """Check the decoded dataset and return (images, labels, is_test, class_names, split)."""
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
        images, labels = decoded.train.images, train_labels
        num_held_out = int(round(len(labels) * test_fraction))
        held_out = _stratified_sample(labels, num_held_out, np.random.default_rng(seed), keep_one_out=True)
        is_test = np.zeros(len(labels), dtype=bool)
        is_test[held_out] = True
        split = {"kind": "stratified", "seed": seed, "test_fraction": test_fraction}
    else:
        images = np.concatenate([decoded.train.images, decoded.test.images])
        labels = np.concatenate([train_labels, test_labels])
        is_test = np.concatenate([np.zeros(num_train, dtype=bool), np.ones(num_test, dtype=bool)])
        split = {"kind": "source"}
    height, width, channels = images.shape[1:]
    if images.dtype != np.uint8 or channels not in (1, 3) or min(height, width) < 1:
        raise DatasetError(
            f"images are {images.dtype} {images.shape}; accepted are uint8 N×H×W×C, C = 1 or 3"
        )
    return np.ascontiguousarray(images), labels.astype(np.int64), is_test, class_names, split


def content_hash(images: np.ndarray, labels: np.ndarray, is_test: np.ndarray,
                 class_names: list[str] | tuple[str, ...]) -> str:
    """SHA-256 over a canonical encoding of the shape, class names and the three arrays."""
    digest = hashlib.sha256(_HASH_DOMAIN)
    header = {"image_shape": list(images.shape), "class_names": list(class_names)}
    digest.update(json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\x00")
    digest.update(memoryview(np.ascontiguousarray(images, dtype=np.uint8)).cast("B"))
    digest.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
    digest.update(np.ascontiguousarray(is_test, dtype=np.uint8).tobytes())
    return digest.hexdigest()


def _write_store(decoded: _Decoded, root_dir: Path, name: str, format: str, source: dict[str, Any],
                 seed: int, test_fraction: float) -> DatasetInfo:
    images, labels, is_test, class_names, split = _finalise(decoded, seed, test_fraction)
    digest = content_hash(images, labels, is_test, class_names)
    root_dir.mkdir(parents=True, exist_ok=True)
    final = root_dir / digest
    if (final / "meta.json").is_file():
        # Same content already stored (perhaps from another upload): reuse it, but describe this
        # import by its own name and format rather than the first importer's.
        return replace(open_store(final).info, name=name, format=format)
    mean, std = _pixel_moments(images[~is_test])
    meta = {
        "store_version": STORE_VERSION, "name": name, "format": format, "class_names": class_names,
        "image_shape": list(images.shape[1:]), "num_train": int((~is_test).sum()),
        "num_test": int(is_test.sum()), "num_classes": len(class_names), "content_hash": digest,
        "source": source, "split": split,
        # Inputs are normalised with these at training and at inference after export.
        "channel_mean": mean.tolist(), "channel_std": std.tolist(),
    }
    temporary = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX, dir=root_dir))
    try:
        for filename, array in (("images.npy", images), ("labels.npy", labels), ("is_test.npy", is_test)):
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
    return _pixel_moments(store.images[store.indices("train")])


def _pixel_moments(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    levels = np.arange(256) / 255
    means, stds = [], []
    for channel in range(images.shape[-1]):
        # A histogram of the 256 levels gives exact moments without a float copy of the images.
        histogram = np.bincount(images[..., channel].ravel(), minlength=256) / images[..., channel].size
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
