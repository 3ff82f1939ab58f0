"""Built-in datasets: their names, options and loaders.

``blockzoo.data.import_builtin(name, root_dir, seed=0, **options)`` imports one of them into a
store; `load_builtin` here checks the name and options and decodes the dataset
(``blockzoo.data.decoded``).

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
    (10), ``num_images`` (2000), ``image_size`` (16), ``channels`` (1 or 3), ``noise`` (0.15);
    at most ``SYNTHETIC_MAX_BYTES`` of pixels.

Seeds are integers from 0 to ``MAX_SEED``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .archives import DEFAULT_MAX_EXPANDED_BYTES, DatasetError, ExpansionBudget
from .decoded import Decoded, Labelled, stratified_sample
from .readers import pair_idx, parse_idx

__all__ = [
    "BUILTIN_DATASETS", "FASHION_MNIST_CLASSES", "FASHION_MNIST_DIR", "BuiltinDataset", "load_builtin",
]


@dataclass(frozen=True)
class BuiltinDataset:
    """A built-in dataset: its description and the options it accepts, with their defaults."""

    name: str
    description: str
    options: Mapping[str, Any]


FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
SYNTHETIC_MAX_BYTES = 1 << 28
MAX_SEED = 2**32 - 1
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


def load_builtin(name: str, seed: int, options: Mapping[str, Any]) -> tuple[dict[str, Any], Decoded]:
    """Check `name` and `options` and decode that dataset: (the options with defaults, the dataset)."""
    if name not in BUILTIN_DATASETS:
        raise DatasetError(
            f"unknown built-in dataset {name!r}; accepted are {', '.join(sorted(BUILTIN_DATASETS))}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise DatasetError(f"seed={seed!r} is invalid; accepted is an integer from 0 to {MAX_SEED}")
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
    return chosen, decoded


def _load_digits() -> Decoded:
    from sklearn.datasets import load_digits  # scikit-learn ships these; no download happens

    digits = load_digits()
    # The 0..16 grey levels stretched to 0..255.
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)[..., None]
    return Decoded(Labelled(images, digits.target), None, [str(label) for label in range(10)])


def _load_fashion_mnist(train_limit: int | None, seed: int) -> Decoded:
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
            kind: parse_idx(files[split, kind].read_bytes(), files[split, kind].name, kind, budget)
            for kind in ("images", "labels")
        }
        splits[split] = pair_idx(arrays["images"], arrays["labels"], files[split, "images"].name,
                                 files[split, "labels"].name)
    train = splits["train"]
    if train_limit is not None:
        keep = stratified_sample(train.labels, train_limit, np.random.default_rng(seed))
        train = Labelled(train.images[keep], train.labels[keep])
    return Decoded(train, splits["test"], list(FASHION_MNIST_CLASSES))


def _make_synthetic(
    *, seed: int, num_classes: int, num_images: int, image_size: int, channels: int, noise: float
) -> Decoded:
    _check_int_option("num_classes", num_classes, 2, 1000)
    _check_int_option("num_images", num_images, 2 * num_classes, 1_000_000)
    _check_int_option("image_size", image_size, 4, 512)
    if channels not in (1, 3) or isinstance(channels, bool):
        raise DatasetError(f"channels={channels!r} is invalid; accepted are 1 and 3")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise <= 1:
        raise DatasetError(f"noise={noise!r} is invalid; accepted is a number from 0 to 1")
    size = num_images * image_size * image_size * channels
    if size > SYNTHETIC_MAX_BYTES:
        raise DatasetError(
            f"num_images × image_size² × channels = {size} bytes of pixels; accepted are at most "
            f"{SYNTHETIC_MAX_BYTES} (fewer or smaller images)"
        )
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
    contrast = rng.uniform(0.7, 1.0, size=(num_images, 1, 1, 1))
    pixels = np.empty((num_images, image_size, image_size, channels), dtype=np.uint8)
    # A chunk of images at a time (the noise drawn in the same order as all at once): the float
    # intermediates stay small however many images are asked for.
    step = max(1, (4 << 20) // (image_size * image_size * channels))
    for start in range(0, num_images, step):
        part = slice(start, start + step)
        images = prototypes[labels[part, None, None], rows[part, :, None], cols[part, None, :]]
        images = images * contrast[part] + rng.normal(0.0, noise, size=images.shape)
        pixels[part] = np.clip(np.round(images * 255), 0, 255)
    return Decoded(Labelled(pixels, labels), None, [f"class_{label}" for label in range(num_classes)])


def _check_int_option(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DatasetError(f"{name}={value!r} is invalid; accepted is an integer from {low} to {high}")
