"""Training the reference network: the largest architecture of the space (paper §3).

The reference is trained once per (dataset, space, recipe) on the dataset's training split
with :class:`blockzoo.training.TrainRecipe` and saved as safetensors; its test accuracy is
measured on the test split. A user may instead bring their own reference weights
(:func:`load_reference`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from .data import DatasetStore, to_tensor_split
from .files import file_sha256
from .nets import Network, build_network
from .progress import ProgressFn, StopFn, report
from .space import SearchSpace
from .training import TrainRecipe, default_device, train_network
from .zoo import load_network, save_network

# A reference this close to chance makes every proxy score noise: less than a quarter of the
# way from chance (1 / classes) to perfect accuracy.
NEAR_CHANCE_SHARE = 0.25

# The default recipe is sized for mbv3-tiny on 10k Fashion-MNIST images in ≤10 minutes on 2 idle
# CPU cores (bench/reference_training.py measures it).
ReferenceRecipe = TrainRecipe


@dataclass(frozen=True)
class ReferenceResult:
    path: Path
    sha256: str
    test_accuracy: float
    train_accuracy: float
    steps: int
    seconds: float
    in_channels: int
    num_classes: int

    @property
    def warning(self) -> Optional[str]:
        """What is wrong with this reference for scoring (None: nothing we can tell)."""
        return near_chance_warning(self.test_accuracy, self.num_classes)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256, "test_accuracy": self.test_accuracy,
                "train_accuracy": self.train_accuracy, "steps": self.steps, "seconds": self.seconds,
                "in_channels": self.in_channels, "num_classes": self.num_classes, "warning": self.warning}


def near_chance_warning(test_accuracy: float, num_classes: int) -> Optional[str]:
    """A warning when ``test_accuracy`` is near chance for ``num_classes`` classes, else None."""
    chance = 1.0 / max(num_classes, 1)
    if not math.isfinite(test_accuracy) or test_accuracy >= chance + NEAR_CHANCE_SHARE * (1.0 - chance):
        return None
    return (f"the reference's test accuracy {test_accuracy:.1%} is near chance ({chance:.1%} for {num_classes} "
            "classes): proxy scores from this zoo will mean little; train the reference longer (more epochs, "
            "a smaller batch_size) or check the dataset")


def train_reference(space: SearchSpace, store: DatasetStore, recipe: TrainRecipe, out_path: Path | str, *,
                    device: Optional[torch.device] = None, progress: Optional[ProgressFn] = None,
                    should_stop: Optional[StopFn] = None) -> ReferenceResult:
    """Train the space's reference on ``store`` and write it to ``out_path`` (safetensors).

    A checkpoint next to ``out_path`` makes a killed run resume where it stopped.
    """
    out_path = Path(out_path)
    device = device or default_device()
    report(progress, 0.0, f"loading: the dataset at {space.input_size}x{space.input_size}")
    x_train, y_train = to_tensor_split(store, "train", space.input_size)
    x_test, y_test = to_tensor_split(store, "test", space.input_size)
    in_channels, num_classes = x_train.shape[1], store.num_classes
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        net = build_network(space, space.reference, in_channels, num_classes)
    checkpoint = out_path.with_name(out_path.stem + ".checkpoint.pt")
    result = train_network(net, x_train, y_train, recipe, x_test=x_test, y_test=y_test,
                           checkpoint=checkpoint, device=device, progress=progress, should_stop=should_stop)
    net.cpu()
    meta = {"arch": space.reference.id, "space": space.name, "test_accuracy": repr(result.test_accuracy),
            "recipe": json.dumps(recipe.to_dict()), "dataset_hash": store.meta.get("content_hash", "")}
    sha = save_network(net, out_path, meta)
    checkpoint.unlink(missing_ok=True)
    return ReferenceResult(out_path, sha, result.test_accuracy, result.train_accuracy, result.steps,
                           result.seconds, in_channels, num_classes)


def load_reference(space: SearchSpace, path: Path | str, in_channels: int, num_classes: int) -> Network:
    """The reference network from a safetensors file (ours or a user's, same key names)."""
    return load_network(space, space.reference, in_channels, num_classes, Path(path))


def reference_sha256(path: Path | str) -> str:
    return file_sha256(Path(path))
