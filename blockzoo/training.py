"""Supervised training of one network: the reference, ground-truth runs and fine-tuning.

Default recipe (documented in the README): SGD with Nesterov momentum 0.9, lr 0.1 for batches
of 128 (scaled linearly with the batch size), one warm-up epoch, cosine decay to zero by
step, weight decay 5e-5 on conv/linear weights only (none on BN and biases), label smoothing
0.1, random crop (pad 2) + horizontal flip, and BN statistics recomputed with the final weights
on 20 training batches ("precise BN"). Randomness (init is the caller's; data order and
augmentation here) comes from one seeded generator, so a seed fixes the whole run. With a
checkpoint path, the state is saved after every epoch and a rerun resumes where it stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .data import augment, shuffled_batches
from .files import atomic_path
from .progress import ProgressFn, StopFn, Ticker, check_stop, report
from .recipe import Recipe, optimizer_problems


@dataclass(frozen=True)
class TrainRecipe(Recipe):
    """How one network is trained (defaults: the module docstring's recipe)."""

    kind: ClassVar[str] = "training recipe"

    epochs: float = 8
    batch_size: int = 128
    lr: float = 0.1              # for batch_size 128; scaled linearly with batch_size
    momentum: float = 0.9
    weight_decay: float = 5e-5
    label_smoothing: float = 0.1
    warmup_epochs: float = 1.0
    augment: bool = True         # random crop (pad 2)
    flip: bool = True            # random horizontal flip (turn off for digits/text)
    seed: int = 0
    precise_bn_batches: int = 20  # recompute BN statistics on this many batches after training

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.epochs <= 1000:
            problems.append("epochs must be in (0, 1000]")
        if not 1 <= self.batch_size <= 8192:
            problems.append("batch_size must be between 1 and 8192")
        problems += optimizer_problems(self.lr, self.momentum, self.weight_decay)
        if not 0 <= self.label_smoothing < 1:
            problems.append("label_smoothing must be in [0, 1)")
        if self.warmup_epochs < 0:
            problems.append("warmup_epochs must be >= 0")
        if not 0 <= self.precise_bn_batches <= 10_000:
            problems.append("precise_bn_batches must be between 0 and 10000")
        if problems:
            raise ValueError("invalid training recipe: " + "; ".join(problems))


@dataclass(frozen=True)
class TrainResult:
    test_accuracy: float
    train_accuracy: float   # running accuracy over the last epoch (augmented batches)
    steps: int
    seconds: float


@torch.no_grad()
def recalibrate_batchnorm(net: nn.Module, batches: Sequence[torch.Tensor],
                          progress: Optional[ProgressFn] = None) -> nn.Module:
    """Reset BN statistics of ``net`` (in place) to their cumulative average over ``batches``.

    Running averages lag behind fast-moving weights, so a short training run evaluated with
    them can score near chance; recomputing them with the final weights ("precise BN") fixes it.
    """
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average
    was_training = net.training
    net.train()
    ticker = Ticker()
    for i, x in enumerate(batches):
        net(x)
        if progress is not None and (ticker.due() or i + 1 == len(batches)):
            report(progress, (i + 1) / len(batches), f"precise BN: batch {i + 1}/{len(batches)}")
    for bn, momentum in zip(bns, saved):
        bn.momentum = momentum
    net.train(was_training)
    return net


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """Images in channels-last layout, where oneDNN runs these small depthwise networks' convolutions
    faster on CPU (docs/core-api.md, "Speed notes"); a no-op for other tensors."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _param_groups(net: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for module in net.modules():
        for name, p in module.named_parameters(recurse=False):
            is_weight = name == "weight" and isinstance(module, (nn.Conv2d, nn.Linear))
            (decay if is_weight else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 128,
             progress: Optional[ProgressFn] = None) -> float:
    """Top-1 accuracy of ``net`` (eval mode) on a whole split held as tensors."""
    if len(y) == 0:
        return float("nan")
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    correct = 0
    ticker = Ticker()
    # Batches of ~128 keep activations in cache; far larger calls are slower (Speed notes).
    for start in range(0, len(y), batch_size):
        logits = net(channels_last(x[start:start + batch_size].to(device)))
        correct += int((logits.argmax(1).cpu() == y[start:start + batch_size].cpu()).sum())
        done = min(start + batch_size, len(y))
        if progress is not None and (ticker.due() or done == len(y)):
            report(progress, done / len(y), f"evaluating: {done}/{len(y)} test images")
    net.train(was_training)
    return correct / len(y)


def _load_checkpoint(checkpoint: Optional[Path], device: torch.device) -> Optional[dict]:
    """The saved training state, or None. A concurrent run of the same job may finish and remove
    the file between the check and the read: then this run starts from scratch (same result)."""
    if checkpoint is None:
        return None
    try:
        return torch.load(checkpoint, map_location=device, weights_only=True)
    except FileNotFoundError:
        return None


def train_network(net: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor, recipe: TrainRecipe, *,
                  x_test: Optional[torch.Tensor] = None, y_test: Optional[torch.Tensor] = None,
                  checkpoint: Optional[Path] = None, device: Optional[torch.device] = None,
                  progress: Optional[ProgressFn] = None, should_stop: Optional[StopFn] = None,
                  ) -> TrainResult:
    """Train ``net`` in place with ``recipe``; returns test accuracy (NaN without a test split).

    ``progress`` hears three phases, ``training`` (step, loss), ``precise BN`` and ``evaluating``,
    at least once a second each; its fraction weighs them by the images each one computes
    (a training image counts three times: forward and backward).
    """
    device = device or default_device()
    net.to(device)
    if x_train.dim() == 4:
        net.to(memory_format=torch.channels_last)
    x_train, y_train = x_train.to(device), y_train.to(device)
    steps_per_epoch = math.ceil(len(y_train) / recipe.batch_size)
    total_steps = max(1, round(recipe.epochs * steps_per_epoch))
    warmup_steps = min(total_steps - 1, round(recipe.warmup_epochs * steps_per_epoch))
    base_lr = recipe.lr * recipe.batch_size / 128
    optimizer = torch.optim.SGD(_param_groups(net, recipe.weight_decay), lr=base_lr,
                                momentum=recipe.momentum, nesterov=recipe.momentum > 0)
    generator = torch.Generator(device=device).manual_seed(recipe.seed)
    step, started = 0, time.perf_counter()
    # A resumed run reports the whole run: the seconds before the checkpoint count, and when no
    # step is left to run, the last epoch's accuracy is the checkpointed one.
    seconds_before, epoch_accuracy = 0.0, 0.0
    state = _load_checkpoint(checkpoint, device)
    if state is not None:
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"].cpu() if device.type == "cpu" else state["generator"])
        step = int(state["step"])
        seconds_before = float(state.get("seconds", 0.0))
        epoch_accuracy = float(state.get("epoch_accuracy", 0.0))

    evaluated = x_test is not None and y_test is not None
    train_work = 3 * total_steps * recipe.batch_size
    bn_work = min(recipe.precise_bn_batches * recipe.batch_size, len(y_train))
    test_work = len(y_test) if evaluated else 0  # type: ignore[arg-type]
    all_work = max(1, train_work + bn_work + test_work)

    def in_share(start: int, size: int) -> Optional[ProgressFn]:
        """``progress`` for a phase whose work is ``start .. start + size`` of the whole."""
        if progress is None:
            return None
        return lambda fraction, message: report(progress, (start + fraction * size) / all_work, message)

    def lr_at(s: int) -> float:
        if s < warmup_steps:
            return base_lr * (s + 1) / warmup_steps
        progress_ = (s - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * base_lr * (1 + math.cos(math.pi * progress_))

    net.train()
    correct = seen = 0
    ticker = Ticker()
    while step < total_steps:
        correct = seen = 0
        for index in shuffled_batches(len(y_train), recipe.batch_size, generator, drop_last=False):
            if step >= total_steps:
                break
            index = index.to(device)
            x, y = x_train[index], y_train[index]
            if recipe.augment or recipe.flip:
                x = augment(x, generator, pad=2 if recipe.augment else 0, flip=recipe.flip)
            x = channels_last(x)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            logits = net(x)
            loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            step += 1
            if progress is not None and (ticker.due() or step == total_steps):
                report(progress, 3 * step * recipe.batch_size / all_work,
                       f"training: step {step}/{total_steps} loss {loss.item():.3f}")
        epoch_accuracy = correct / max(seen, 1)
        if checkpoint is not None:
            # torch.save refuses a file name without a stem (".tmp-x"): keep an extension.
            with atomic_path(checkpoint, suffix=".pt") as tmp:
                torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict(),
                            "generator": generator.get_state(), "step": step, "epoch_accuracy": epoch_accuracy,
                            "seconds": seconds_before + time.perf_counter() - started}, tmp)
        check_stop(should_stop)
    if recipe.precise_bn_batches:
        order = torch.randperm(len(y_train), generator=generator, device=generator.device).to(device)
        chunks = order[: recipe.precise_bn_batches * recipe.batch_size].split(recipe.batch_size)
        recalibrate_batchnorm(net, [channels_last(x_train[index]) for index in chunks],
                              progress=in_share(train_work, bn_work))
    test_accuracy = (evaluate(net, x_test, y_test, progress=in_share(train_work + bn_work, test_work))
                     if evaluated else float("nan"))
    return TrainResult(test_accuracy, epoch_accuracy, step, seconds_before + time.perf_counter() - started)
