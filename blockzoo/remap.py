"""Parameter remapping (PR): initialise candidate blocks from the reference's (paper Eq. 1–2).

Layer-wise (Eq. 1): layer ``o`` of a candidate block copies layer ``o`` of the reference block,
for ``o = 1..O`` where ``O`` is the candidate's depth.

Channel-wise (Eq. 2): inside a layer the candidate keeps the *first* ``K`` expanded channels,
``K`` being its hidden width. Concretely, per MBConv layer:

* expand 1x1 conv: output channels ``[:K]``; its BN weight, bias, running mean and var ``[:K]``;
* depthwise 3x3 conv and its BN: channels ``[:K]``;
* squeeze-excite: reduce conv ``weight[:S, :K]``, ``bias[:S]`` (the first ``S`` hidden units);
  expand conv ``weight[:K, :S]``, ``bias[:K]``;
* project 1x1 conv: input channels ``[:K]`` (output channels and its BN unchanged).

Every one of these is a leading slice on each tensor dimension, so remapping is "take the
candidate-shaped corner of every reference tensor" (:func:`remap_into`). Which channels come
first is decided once by :func:`reorder_channels`: ``"first"`` keeps the reference's order (the
paper), ``"l1"`` sorts expanded channels and SE units by importance (L1 norm of the weights that
read them, as once-for-all does) — the paper's Limitations suggest the choice matters. This is
the only module that slices weights.
"""

from __future__ import annotations

import copy
from typing import Literal, Sequence

import torch
from torch import nn

from .nets import MBConv, Network, build_block
from .space import SearchSpace

RemapOrder = Literal["first", "l1"]
REMAP_ORDERS = ("first", "l1")


@torch.no_grad()
def remap_into(source: nn.Module, target: nn.Module) -> None:
    """Copy the leading corner of every ``source`` tensor into the same-named ``target`` tensor."""
    src = source.state_dict()
    for name, dst in target.state_dict().items():
        ref = src[name]
        if ref.dim() != dst.dim() or any(r < d for r, d in zip(ref.shape, dst.shape)):
            raise ValueError(f"cannot remap {name}: reference {tuple(ref.shape)} is smaller than "
                             f"candidate {tuple(dst.shape)}")
        dst.copy_(ref[tuple(slice(0, n) for n in dst.shape)])


def remap_block(space: SearchSpace, stage: int, expand: Sequence[int],
                reference_block: nn.Sequential) -> nn.Sequential:
    """A candidate block of ``stage`` initialised from ``reference_block`` (layers and channels)."""
    if len(expand) > len(reference_block):
        raise ValueError(f"candidate depth {len(expand)} exceeds the reference's {len(reference_block)}")
    # Built where the reference lives, so a zoo on a GPU remaps and trains there.
    block = build_block(space, stage, expand).to(next(reference_block.parameters()).device)
    for candidate_layer, reference_layer in zip(block, reference_block):
        remap_into(reference_layer, candidate_layer)
    return block


def _permute_(param: torch.Tensor, order: torch.Tensor, dim: int) -> None:
    param.copy_(param.index_select(dim, order))


@torch.no_grad()
def _reorder_layer_(layer: MBConv) -> None:
    # Importance of an expanded channel = L1 mass of the projection weights that read it.
    importance = layer.project.conv.weight.abs().sum(dim=(0, 2, 3))
    order = torch.argsort(importance, descending=True, stable=True)
    for module in (layer.expand, layer.depthwise):
        _permute_(module.conv.weight, order, 0)
        for t in (module.bn.weight, module.bn.bias, module.bn.running_mean, module.bn.running_var):
            _permute_(t, order, 0)
    _permute_(layer.project.conv.weight, order, 1)
    if isinstance(layer.se, nn.Module) and hasattr(layer.se, "reduce"):
        se = layer.se
        _permute_(se.reduce.weight, order, 1)
        _permute_(se.expand.weight, order, 0)
        _permute_(se.expand.bias, order, 0)
        # SE hidden units: importance = L1 mass of the expand weights that read them.
        unit_order = torch.argsort(se.expand.weight.abs().sum(dim=(0, 2, 3)), descending=True, stable=True)
        _permute_(se.reduce.weight, unit_order, 0)
        _permute_(se.reduce.bias, unit_order, 0)
        _permute_(se.expand.weight, unit_order, 1)


def reorder_channels(reference: Network, order: RemapOrder) -> Network:
    """A functionally identical copy of ``reference`` whose channels are in remap order."""
    if order not in REMAP_ORDERS:
        raise ValueError(f"remap_order must be one of {list(REMAP_ORDERS)}, got {order!r}")
    reordered = copy.deepcopy(reference)
    if order == "l1":
        for stage in reordered.stages:
            for layer in stage:
                _reorder_layer_(layer)
    return reordered


def remap_network(space: SearchSpace, reference: Network, arch) -> Network:
    """The whole candidate ``arch`` with PR weights: prefix and head from the reference."""
    arch = space.parse(arch)
    stages = [remap_block(space, m, arch.expand[m], reference.stages[m]) for m in range(space.num_stages)]
    return Network(copy.deepcopy(reference.prefix), stages, copy.deepcopy(reference.head))
