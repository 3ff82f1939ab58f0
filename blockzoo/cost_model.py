"""Analytic MACs and parameter count of an architecture (pure Python, no torch).

Counted, exactly as ``torch.utils.flop_counter`` counts (its FLOPs / 2) and as
``sum(p.numel() for p in net.parameters())`` counts:

* MACs: every convolution (``C_out * H_out * W_out * C_in / groups * k * k``, bias adds not
  counted) and the classifier's matrix multiply (``in * out``), squeeze-excite 1x1 convs
  included (they run on a 1x1 map). Not counted: BatchNorm, activations, pooling, the SE
  gate multiply and residual adds — elementwise work that torch's counter ignores too.
* Params: conv and linear weights and biases, BatchNorm affine weight and bias (running
  statistics are buffers, not parameters).

The module is called ``cost_model`` so that ``blockzoo.cost`` can be the function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .space import Architecture, SearchSpace


@dataclass(frozen=True)
class Cost:
    macs: int
    params: int

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.macs + other.macs, self.params + other.params)

    def to_dict(self) -> dict[str, int]:
        return {"macs": self.macs, "params": self.params}


def _conv(cin: int, cout: int, kernel: int, out_size: int, groups: int = 1, bias: bool = False,
          bn: bool = True) -> Cost:
    weights = cout * (cin // groups) * kernel * kernel
    params = weights + (cout if bias else 0) + (2 * cout if bn else 0)
    return Cost(weights * out_size * out_size, params)


def prefix_cost(space: SearchSpace, in_channels: int) -> Cost:
    c, s = space.stem_channels, space.input_size
    return (_conv(in_channels, c, 3, s)
            + _conv(c, c, 3, s, groups=c)   # first block: depthwise
            + _conv(c, c, 1, s))             # first block: pointwise


def block_cost(space: SearchSpace, stage: int, expand: tuple[int, ...]) -> Cost:
    """Cost of one candidate block of ``stage``."""
    total = Cost(0, 0)
    size = space.output_size(stage - 1) if stage > 0 else space.input_size
    for spec in space.layer_specs(stage, expand):
        out = (size - 1) // spec.stride + 1
        h = spec.hidden_channels
        total += _conv(spec.in_channels, h, 1, size)
        total += _conv(h, h, 3, out, groups=h)
        if spec.use_se:
            total += _conv(h, spec.se_channels, 1, 1, bias=True, bn=False)
            total += _conv(spec.se_channels, h, 1, 1, bias=True, bn=False)
        total += _conv(h, spec.out_channels, 1, out)
        size = out
    return total


def head_cost(space: SearchSpace, num_classes: int) -> Cost:
    size = space.output_size(space.num_stages - 1)
    total = _conv(space.widths[-1], space.head_channels, 1, size)
    features = space.head_channels
    if space.feature_channels:
        total += _conv(features, space.feature_channels, 1, 1, bn=False)
        features = space.feature_channels
    return total + Cost(features * num_classes, features * num_classes + num_classes)


def cost(space: SearchSpace, arch: Architecture | dict[str, Any] | str, in_channels: int = 3,
         num_classes: int = 10) -> Cost:
    """MACs and parameters of ``arch`` for inputs of ``in_channels`` x input_size x input_size."""
    arch = space.parse(arch)
    total = prefix_cost(space, in_channels) + head_cost(space, num_classes)
    for m in range(space.num_stages):
        total += block_cost(space, m, arch.expand[m])
    return total
