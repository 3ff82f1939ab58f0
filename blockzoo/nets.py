"""Torch modules of the MobileNetV3 search space (DESIGN §2).

Every network, the reference and each candidate alike, is ``prefix -> stages -> head``:

* ``prefix``: stem conv3x3 + BN + h-swish, then the fixed first block (depthwise 3x3 + BN +
  ReLU, pointwise + BN, identity residual);
* ``stages``: one ``nn.Sequential`` of :class:`MBConv` layers per searchable stage — a
  *candidate block* in the paper's words;
* ``head``: 1x1 conv + BN + h-swish, global pool, optional 1x1 feature mix + h-swish,
  dropout, linear.

Shapes come from :meth:`SearchSpace.layer_specs`, the same plan ``cost_model`` counts. The
modules are written once and shared by the reference, the candidates and the zoo, so that a
candidate block is literally the reference block's module type at a smaller width.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .space import Architecture, LayerSpec, SearchSpace


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "hswish":
        return nn.Hardswish(inplace=True)
    raise ValueError(f"unknown activation {name!r}")


class ConvNormAct(nn.Sequential):
    """Conv (no bias) + BatchNorm + optional activation, with stable state-dict names."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: str | None = None) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            conv=nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            bn=nn.BatchNorm2d(cout),
        )
        if act is not None:
            layers["act"] = activation(act)
        super().__init__(layers)


class PooledPointwise(nn.Conv2d):
    """A 1x1 conv (with bias) on a 1x1 map, computed as the matrix product it is: same parameters,
    same result, faster on CPU than the convolution path for SE's pooled features
    (docs/core-api.md, "Speed notes")."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.flatten(1), self.weight.flatten(1), self.bias)[:, :, None, None]


class SqueezeExcite(nn.Module):
    """MobileNetV3 squeeze-excite: pool, 1x1 reduce (bias) + ReLU, 1x1 expand (bias), hard-sigmoid."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.reduce = PooledPointwise(channels, hidden)
        self.act = nn.ReLU(inplace=True)
        self.expand = PooledPointwise(hidden, channels)
        self.gate = nn.Hardsigmoid(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class MBConv(nn.Module):
    """Inverted residual: pw expand, dw 3x3 (strided), optional SE, pw project; residual when shapes match."""

    def __init__(self, spec: LayerSpec) -> None:
        super().__init__()
        self.spec = spec
        hidden = spec.hidden_channels
        self.expand = ConvNormAct(spec.in_channels, hidden, act=spec.activation)
        self.depthwise = ConvNormAct(hidden, hidden, 3, spec.stride, groups=hidden, act=spec.activation)
        self.se = SqueezeExcite(hidden, spec.se_channels) if spec.use_se else nn.Identity()
        self.project = ConvNormAct(hidden, spec.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.spec.residual else y


class FirstBlock(nn.Module):
    """The fixed first block: depthwise 3x3 + BN + ReLU, pointwise + BN, identity residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.depthwise = ConvNormAct(channels, channels, 3, groups=channels, act="relu")
        self.project = ConvNormAct(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.depthwise(x))


class Head(nn.Module):
    def __init__(self, space: SearchSpace, num_classes: int) -> None:
        super().__init__()
        self.conv = ConvNormAct(space.widths[-1], space.head_channels, act="hswish")
        self.pool = nn.AdaptiveAvgPool2d(1)
        features = space.head_channels
        if space.feature_channels:
            self.feature_mix: nn.Module = nn.Sequential(
                OrderedDict(conv=nn.Conv2d(features, space.feature_channels, 1, bias=False),
                            act=nn.Hardswish(inplace=True))
            )
            features = space.feature_channels
        else:
            self.feature_mix = nn.Identity()
        self.dropout = nn.Dropout(space.dropout)
        self.classifier = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.feature_mix(self.pool(self.conv(x)))
        return self.classifier(self.dropout(torch.flatten(x, 1)))


def build_prefix(space: SearchSpace, in_channels: int) -> nn.Sequential:
    c = space.stem_channels
    return nn.Sequential(OrderedDict(stem=ConvNormAct(in_channels, c, 3, act="hswish"),
                                     first_block=FirstBlock(c)))


def build_block(space: SearchSpace, stage: int, expand: Sequence[int]) -> nn.Sequential:
    """The candidate block of ``stage`` with these expansion ratios (one per layer)."""
    return nn.Sequential(*(MBConv(spec) for spec in space.layer_specs(stage, expand)))


class Network(nn.Module):
    """prefix -> stages -> head. ``features(x, upto)`` exposes the stage outputs for block KD."""

    def __init__(self, prefix: nn.Module, stages: Sequence[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.prefix = prefix
        self.stages = nn.ModuleList(stages)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prefix(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)

    def stage_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[prefix output, stage 1 output, ..., stage M output]: the KD inputs and targets."""
        feats = [self.prefix(x)]
        for stage in self.stages:
            feats.append(stage(feats[-1]))
        return feats


def init_weights(module: nn.Module) -> None:
    """He init for convs, N(0, 0.01) for the classifier, BN at identity (as timm/torchvision)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


def build_network(space: SearchSpace, arch: Architecture | dict | str, in_channels: int,
                  num_classes: int) -> Network:
    """A randomly initialised network of ``arch`` for images with ``in_channels`` channels."""
    arch = space.parse(arch)
    net = Network(
        build_prefix(space, in_channels),
        [build_block(space, m, arch.expand[m]) for m in range(space.num_stages)],
        Head(space, num_classes),
    )
    init_weights(net)
    return net
