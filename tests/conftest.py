"""Shared fixtures of the core tests: a real (small) dataset store, reference and block zoo."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from blockzoo.data import import_builtin, open_store, to_tensor_split
from blockzoo.distill import DistillRecipe
from blockzoo.nets import build_network
from blockzoo.space import get_space
from blockzoo.training import TrainRecipe, train_network
from blockzoo.zoo import BlockZoo, KDData

# One thread: the service tests run servers and workers beside pytest, and oversubscribed
# torch threads on 2 cores were measured 10-15x slower than one thread each.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_space():
    return get_space("mbv3-tiny")


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    info = import_builtin("synthetic", root, num_images=1600, image_size=16, seed=0)
    return open_store(info.path)


@pytest.fixture(scope="session")
def train_tensors(synthetic_store, tiny_space):
    return to_tensor_split(synthetic_store, "train", tiny_space.input_size)


@pytest.fixture(scope="session")
def trained_reference(tiny_space, train_tensors, synthetic_store):
    """The mbv3-tiny reference after ~40 SGD steps on synthetic data (enough to be non-trivial)."""
    x, y = train_tensors
    torch.manual_seed(0)
    net = build_network(tiny_space, tiny_space.reference, x.shape[1], synthetic_store.num_classes)
    train_network(net, x, y, TrainRecipe(epochs=2, batch_size=64, warmup_epochs=0.2, seed=0),
                  device=torch.device("cpu"))
    return net.eval()


SMALL_RECIPE = DistillRecipe(batches=4, batch_size=32, heldout_batches=2, seed=0)


@pytest.fixture
def make_zoo(tiny_space, trained_reference, train_tensors, synthetic_store, tmp_path):
    """Factory: a fresh zoo directory for a recipe (reference and KD batches from the fixtures)."""

    def make(recipe: DistillRecipe = SMALL_RECIPE, name: str = "zoo") -> BlockZoo:
        x, y = train_tensors
        return BlockZoo.create_from_parts(
            tmp_path / name, tiny_space, trained_reference, KDData.select(x, y, recipe), recipe,
            in_channels=x.shape[1], num_classes=synthetic_store.num_classes,
            dataset_hash=synthetic_store.meta["content_hash"])

    return make


def block_files(zoo: BlockZoo) -> dict[Path, tuple[dict, dict]]:
    """Every stored block as (metadata, {tensor name: raw bytes}); safetensors headers may
    order metadata keys differently, so files are compared by content, not byte for byte."""
    from safetensors import safe_open

    contents = {}
    for path in sorted((zoo.root / "blocks").glob("s*/*.safetensors")):
        with safe_open(str(path), "pt") as fh:
            tensors = {k: fh.get_tensor(k).numpy().tobytes() for k in fh.keys()}
            contents[path.relative_to(zoo.root)] = (fh.metadata(), tensors)
    return contents
