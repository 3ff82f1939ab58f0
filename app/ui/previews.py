"""Dataset previews computed from a normalised store: images per class and a grid of samples.

Pure numpy and Pillow (no torch), so the API process can answer them in the request.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from blockzoo.data import DatasetStore

GRID_GAP = 2  # pixels between cells; the dashboard lays the class names out with the same pitch


def class_counts(store: DatasetStore) -> list[dict[str, int | str]]:
    """Per class: its index, name and the number of training and test images."""
    k = store.num_classes
    train = np.bincount(store.labels[~store.is_test], minlength=k)
    test = np.bincount(store.labels[store.is_test], minlength=k)
    return [{"index": i, "name": store.class_names[i], "train": int(train[i]), "test": int(test[i])}
            for i in range(k)]


def sample_grid_png(store: DatasetStore, per_class: int, max_classes: int, cell: int, seed: int = 0) -> bytes:
    """One row per class (the first ``max_classes``), ``per_class`` training images in each, as a PNG.

    Images are picked with a seeded generator (the same grid every time) and scaled to ``cell``
    pixels with nearest-neighbour sampling, so that small images stay crisp. Rows are
    ``cell + GRID_GAP`` pixels apart; a class with fewer images leaves its cells empty.
    """
    rng = np.random.default_rng(seed)
    classes = min(store.num_classes, max_classes)
    channels = store.images.shape[3]
    pitch = cell + GRID_GAP
    grid = Image.new("RGB", (per_class * pitch - GRID_GAP, classes * pitch - GRID_GAP), (255, 255, 255))
    train = ~store.is_test
    for row in range(classes):
        members = np.flatnonzero(train & (store.labels == row))
        chosen = np.sort(rng.choice(members, size=min(per_class, len(members)), replace=False))
        for col, index in enumerate(chosen):
            pixels = np.asarray(store.images[index])
            image = Image.fromarray(pixels[:, :, 0], "L") if channels == 1 else Image.fromarray(pixels[:, :, :3])
            grid.paste(image.convert("RGB").resize((cell, cell), Image.NEAREST), (col * pitch, row * pitch))
    out = io.BytesIO()
    grid.save(out, format="PNG", optimize=True)
    return out.getvalue()
