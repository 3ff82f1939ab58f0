"""BatchNorm recalibration of T stacked batches in one forward pass (for the proxy).

The proxy recalibrates every candidate's BN statistics on the T KD batches: each batch is
normalised with its own statistics (train mode) and the running statistics become their
cumulative average (``momentum=None``). Done one batch at a time, that is T forward calls per
block; for the late, low-resolution stages of a small network the cost is almost all
per-call overhead, not arithmetic (``mbv3-tiny`` stage 5 at 2x2 took as long as stage 1 at
16x16). So the proxy stacks the T batches into one tensor and runs each block once: its
convolutions and activations see all T*B images at once (they are per-image operations), and
only :class:`GroupedBatchNorm2d` splits them again — each group of ``group_size`` images is
normalised with its own statistics and folded into the cumulative running average, the same
``F.batch_norm`` call ``nn.BatchNorm2d`` makes per batch. Equal to the batch-by-batch result
up to float rounding in the convolutions (tests/test_recalibration.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GroupedBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d that, between :meth:`start` and :meth:`finish` and in train mode, treats
    each consecutive group of ``group_size`` images as its own batch (momentum=None)."""

    group_size: int | None = None

    @classmethod
    def sharing(cls, bn: nn.BatchNorm2d) -> "GroupedBatchNorm2d":
        """A grouped twin of ``bn``: the same affine parameters (shared), its own copies of the buffers."""
        twin = cls(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                   track_running_stats=bn.track_running_stats, device=bn.running_mean.device)
        if bn.affine:
            twin.weight, twin.bias = bn.weight, bn.bias
        twin.running_mean.copy_(bn.running_mean)
        twin.running_var.copy_(bn.running_var)
        twin.num_batches_tracked.copy_(bn.num_batches_tracked)
        twin.train(bn.training)
        return twin

    def start(self, group_size: int) -> None:
        """Begin a recalibration: reset the running statistics; train-mode calls then take groups."""
        self.reset_running_stats()
        self.group_size, self._seen = group_size, 0
        # Where the op also writes each group's mean and inverse std (unused: no backward pass).
        self._save_mean = torch.empty_like(self.running_mean)
        self._save_invstd = torch.empty_like(self.running_mean)

    def finish(self) -> None:
        self.group_size = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.group_size):
            return super().forward(x)
        if len(x) % self.group_size:
            raise ValueError(f"{len(x)} images are not whole groups of {self.group_size}")
        # Per group exactly what nn.BatchNorm2d does per batch with momentum=None: normalise with
        # the group's statistics and fold them into the cumulative average (factor 1/n).
        groups = len(x) // self.group_size
        self.num_batches_tracked.add_(groups)
        seen, self._seen = self._seen, self._seen + groups
        if groups == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                True, 1.0 / (seen + 1), self.eps)
        if x.device.type != "cpu":  # the out= path below is verified on CPU only (no GPU in CI)
            return torch.cat([F.batch_norm(group, self.running_mean, self.running_var, self.weight, self.bias,
                                           True, 1.0 / n, self.eps)
                              for n, group in enumerate(x.split(self.group_size), seen + 1)])
        # Each group's result goes straight into its slice of the output: no concatenation (a copy
        # of the whole tensor, ~1/3 of the BN time at 4x4..16x16). The out= form of the op that
        # F.batch_norm runs on CPU (bit-identical, tested).
        out = torch.empty_like(x)
        for n, (group, dst) in enumerate(zip(x.split(self.group_size), out.split(self.group_size)), seen + 1):
            torch.ops.aten.native_batch_norm.out(group, self.weight, self.bias, self.running_mean,
                                                 self.running_var, True, 1.0 / n, self.eps, out=dst,
                                                 save_mean=self._save_mean, save_invstd=self._save_invstd)
        return out


def use_grouped_batchnorm(module: nn.Module) -> list[GroupedBatchNorm2d]:
    """Replace every BatchNorm2d of ``module`` (in place) by a grouped twin sharing its parameters."""
    grouped = []
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, GroupedBatchNorm2d):
                grouped.append(child)
            elif isinstance(child, nn.BatchNorm2d):
                twin = GroupedBatchNorm2d.sharing(child)
                setattr(parent, name, twin)
                grouped.append(twin)
            elif isinstance(child, nn.modules.batchnorm._BatchNorm):
                raise TypeError(f"grouped recalibration supports BatchNorm2d only, not {type(child).__name__}")
    return grouped
