"""Decoded datasets: what a reader or a built-in loader hands to the store writer.

An upload reader (``blockzoo.data.readers``) or a built-in loader (``blockzoo.data.builtin``)
decodes its source into a `Decoded`: the images and raw labels of the training split, those of
the source's own test split if it has one, and the class names if the source names them.
``blockzoo.data`` checks it, turns the labels into class indices, holds out a test split where
the source has none, and writes the store.

`stratified_sample` is the seeded, class-stratified choice that both the store's held-out split
and the built-ins' ``train_limit`` subsets use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Decoded", "Labelled", "stratified_sample"]


@dataclass
class Labelled:
    """Images and labels of one split, as a reader decoded them."""

    images: np.ndarray  # uint8 N×H×W×C
    labels: np.ndarray  # integer N, raw values (not yet class indices)


@dataclass
class Decoded:
    train: Labelled
    test: Labelled | None
    class_names: list[str] | None  # None: the distinct label values become the classes


def stratified_sample(labels: np.ndarray, num_wanted: int, rng: np.random.Generator,
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
