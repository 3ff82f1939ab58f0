"""Fine-tuning a picked architecture from its distilled zoo weights (paper §3, Fig. 3).

The paper's last step: after the proxy has picked an architecture, its blocks from the zoo
(PR + KD) initialise the final model, which then trains far fewer steps than from scratch.
``init`` selects the initialisation so the same function also produces the baselines:

* ``"zoo"``     — reference prefix/head + distilled zoo blocks (the paper's KD init);
* ``"remap"``   — reference prefix/head + parameter-remapped blocks, no KD (PR init);
* ``"scratch"`` — random initialisation (SC), seeded.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from .data import DatasetStore, to_tensor_split
from .nets import Network, build_network
from .progress import ProgressFn, StopFn
from .remap import remap_network
from .space import Architecture
from .training import TrainRecipe, default_device, evaluate, recalibrate_batchnorm, train_network
from .zoo import BlockZoo, save_network

INITS = ("zoo", "remap", "scratch")


@dataclass(frozen=True)
class FinetuneResult:
    arch_id: str
    init: str
    initial_test_accuracy: float
    test_accuracy: float
    steps: int
    seconds: float
    sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def initial_network(zoo: BlockZoo, arch: Architecture, init: str, seed: int = 0) -> Network:
    """``arch`` initialised as ``init`` says (see module docstring)."""
    if init == "zoo":
        return zoo.assemble(arch)
    if init == "remap":
        return remap_network(zoo.space, zoo.reference, arch)
    if init == "scratch":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_network(zoo.space, arch, zoo.in_channels, zoo.num_classes)
    raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")


def finetune(zoo: BlockZoo, arch: Architecture | dict | str, store: DatasetStore, recipe: TrainRecipe, *,
             init: str = "zoo", out_path: Optional[Path] = None, device: Optional[torch.device] = None,
             progress: Optional[ProgressFn] = None, should_stop: Optional[StopFn] = None) -> FinetuneResult:
    """Train ``arch`` on ``store``'s training split from ``init``; test accuracy before and after.

    With ``out_path`` the fine-tuned weights are written there (safetensors, rebuildable with
    ``blockzoo.build_network``) and a checkpoint beside it makes a killed run resume.
    """
    arch = zoo.space.parse(arch)
    if store.meta.get("content_hash") and zoo.manifest.get("dataset_hash") not in ("", store.meta["content_hash"]):
        raise ValueError("this dataset is not the one the zoo was built on; fine-tune on the zoo's dataset")
    device = device or default_device()
    net = initial_network(zoo, arch, init, recipe.seed)
    x_train, y_train = to_tensor_split(store, "train", zoo.space.input_size)
    x_test, y_test = to_tensor_split(store, "test", zoo.space.input_size)
    if init != "scratch":
        # BN statistics must match the new weights before the "before" accuracy means anything.
        recalibrate_batchnorm(net, zoo.kd_data.batches())
    before = evaluate(net, x_test, y_test, progress=None if progress is None else (
        lambda _fraction, message: progress(0.0, message.replace("evaluating:", "evaluating the initial network:"))))
    checkpoint = out_path.with_name(out_path.stem + ".checkpoint.pt") if out_path else None
    result = train_network(net, x_train, y_train, recipe, x_test=x_test, y_test=y_test,
                           checkpoint=checkpoint, device=device, progress=progress, should_stop=should_stop)
    sha = ""
    if out_path is not None:
        net.cpu()
        sha = save_network(net, out_path, {"arch": arch.id, "init": init, "recipe": json.dumps(recipe.to_dict())})
        checkpoint.unlink(missing_ok=True)
    return FinetuneResult(arch.id, init, before, result.test_accuracy, result.steps, result.seconds, sha)
