"""Stacked block distillation: the candidate blocks of one stage trained as ONE computation.

:func:`blockzoo.distill.distill_blocks` trains a chunk of candidate blocks with one summed loss
and one backward, but still runs one small forward per block: ~20 small kernels per layer, per
block and per step, so Python and kernel-launch overhead dominate on a CPU and a GPU sits
idle. :func:`distill_stacked` has the same contract and runs a whole chunk of candidate blocks
as one wide block whose number of kernels does not grow with the number of candidates. The math
is the paper's block-wise few-batch KD (§3, Eq. 3-4) unchanged; DESIGN §3 asks for the blocks
of a stage to be trained together (batched) -- this module is that batching.

**Packing.** Candidate ``g`` of stage ``m`` has depth ``d_g <= D`` and, per layer ``o``, a
hidden width ``K_{g,o}`` (one of a few widths: one per expansion ratio). For layer ``o`` the
stack lays the hidden channels of every candidate still active (``d_g > o``) side by side,
``sum_g K_{g,o}`` channels, grouped into *width classes* of candidates with equal ``K``:

* expand 1x1: layer 0 reads the *shared* teacher feature, so the candidates' expand weights,
  stacked as rows ``[sum K, Cin]``, make ONE matmul; later layers read one input per candidate
  and run one ``bmm`` per width class (``[n_k, B*P, C] @ [n_k, C, K]``);
* BN (train mode, packed affine and running statistics), activation, depthwise 3x3 with
  ``groups = sum K`` (strided on layer 0), BN, activation: one op each for all candidates;
* SE: pool, then per width class a batched reduce + bias, ReLU, batched expand + bias;
  hard-sigmoid and the gate multiply over all channels;
* project: one ``bmm`` per width class (``[n_k, B*P, K] @ [n_k, K, Cout]``), BN over
  ``n * Cout`` channels; residual on the shared input, broadcast over candidates (layer 0 of a
  stride-1 stage with ``Cin == Cout``), else on each candidate's own input;
* depth: a candidate is read off (its loss taken) after its last layer, and layer ``o`` runs
  only the candidates with ``d_g > o``: the depth mask ``y = x + [d_g > o] f(x)`` without
  computing the masked ``f``.

Activations are kept channels-last (``[B*h*w, channels]`` rows), so each class's slice is a
strided view that ``bmm`` reads without a copy; a grouped 1x1 conv, or a broadcasting ``matmul``
that copies the weights per sample, is slower (docs/core-api.md, "Speed notes").

**Why it is exact.** Every op is either per channel (BN, activations, the depthwise conv, SE
pooling, the gate), so laying candidates' channels side by side changes nothing, or a matmul
whose batch index is the candidate (class ``bmm``) or whose rows are one candidate's channels
(layer-0 expand): a candidate's output is computed from its own tensors and its own input
only. Candidates share no tensor and the teacher input needs no gradient, so the gradient of
the summed loss with respect to candidate ``g``'s tensors is the gradient of ``g``'s own loss;
SGD and Adam act element-wise. BN statistics are per channel and ``F.batch_norm`` updates them
in place exactly as ``nn.BatchNorm2d`` does (same momentum, unbiased running variance);
``num_batches_tracked`` advances by one per step.

**Rounding.** In float64 both engines agree to ~1e-15 after several SGD steps. In float32 they
agree to rounding: ~1e-7 on outputs and, per step, up to ~1e-4 relative on the gradients that
cancel most (BN weights) -- partly because torch's CPU channels-last BatchNorm sums over the
batch sequentially (an accurately summing replacement costs more than it is worth: Speed
notes). KD at lr 0.1 amplifies any rounding, the per-block engine's own included.
Within the stacked engine, a block trained alone and the same block trained in any chunk are
bit-identical when torch runs one thread: every sum runs per candidate in an order that does
not depend on the other candidates (the SE pooling, SE biases, SE gate gradient and the loss
are written as matmuls or per-copy rows for that reason). With several threads, kernels split
their work by tensor size, so lazily and eagerly built blocks then agree to rounding only.

**Packed, not padded.** Zero-padding every candidate to the reference width would be exact
too, but does the reference width's elementwise work for every candidate, most of which are
narrower (docs/core-api.md, "Speed notes"). Packing costs one small matmul per width class per
1x1 conv, however many candidates there are.

**Memory.** Saved activations grow with the number of candidates; :func:`plan_chunks` cuts the
blocks into chunks whose estimated activations (:func:`candidate_activation_bytes`) fit
``memory_budget``; a candidate that alone exceeds it is trained alone. On CPU, each packed
activation is also capped (``cpu_tensor_bytes`` of :func:`distill_stacked`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Hashable, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..nets import MBConv
from ..progress import StopFn, check_stop
from ..space import LayerSpec
from .blocks import DistillRecipe, DistillStats, StageTeacher, make_optimizer

DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes of saved activations per chunk
DEFAULT_MAX_GROUP = 64           # candidates per chunk at most (a cancelled job loses one chunk)
DEFAULT_CPU_TENSOR_BYTES = 8 << 20  # on CPU, bytes per packed activation tensor at most (see distill_stacked)

Index = Union[slice, torch.Tensor]


def _act(name: str, x: torch.Tensor) -> torch.Tensor:
    return F.relu(x) if name == "relu" else F.hardswish(x)


def _nchw(rows: torch.Tensor, batch: int, height: int, width: int) -> torch.Tensor:
    """[B*h*w, C] pixel rows -> a channels-last [B, C, h, w] view."""
    return rows.view(batch, height, width, -1).permute(0, 3, 1, 2)


def _rows(x: torch.Tensor) -> torch.Tensor:
    """[B, C, h, w] -> [B*h*w, C] pixel rows (a view when ``x`` is channels-last)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def _index(positions: Sequence[int], device: torch.device) -> Index:
    """A slice when ``positions`` are consecutive (a view, no copy), else an index tensor."""
    if list(positions) == list(range(positions[0], positions[0] + len(positions))):
        return slice(positions[0], positions[0] + len(positions))
    return torch.tensor(list(positions), device=device)


def _take(x: torch.Tensor, index: Index) -> torch.Tensor:
    """``x[:, index]`` for ``x`` [rows, copies, C]."""
    return x[:, index] if isinstance(index, slice) else x.index_select(1, index)


def _layout(name: str) -> str:
    """Where an MBConv tensor lives in a packed layer (see :class:`StackedBlocks`)."""
    if name.startswith("project.bn."):
        return "copy"       # one row per output channel, copies packed
    if name == "project.conv.weight":
        return "channel_t"  # dim 1 is the hidden channel: stored transposed, one row per channel
    if name.startswith("se.reduce.") or name == "se.expand.weight":
        return "class"      # one [n_k, *shape] tensor per width class
    return "channel"        # dim 0 is the hidden channel: one row per channel, copies packed


def _stage_specs(blocks: Sequence[nn.Sequential]) -> list[list[LayerSpec]]:
    """Per block, its layer specs; checks that the blocks are MBConv blocks of one stage."""
    specs = []
    for i, block in enumerate(blocks):
        if not isinstance(block, nn.Sequential) or not all(isinstance(m, MBConv) for m in block):
            raise TypeError(f"block {i}: the stacked engine trains nn.Sequential blocks of MBConv layers "
                            f"(blockzoo.nets.build_block); got {type(block).__name__}")
        specs.append([layer.spec for layer in block])
    shape: dict[int, LayerSpec] = {}
    for block_specs in specs:
        for o, spec in enumerate(block_specs):
            plain = dataclasses.replace(spec, hidden_channels=0, se_channels=0)
            if shape.setdefault(o, plain) != plain:
                raise ValueError(f"layer {o}: blocks of different stages cannot be stacked "
                                 f"({plain} vs {shape[o]}); give the blocks of one stage")
    return specs


def candidate_activation_bytes(block: nn.Sequential, batch_size: int, input_size: int,
                               bytes_per_value: int = 4) -> int:
    """Estimated bytes of activations one candidate adds to a stacked training step (kept for backward).

    ``input_size`` is the side of the stage's input feature. Per layer (``P`` pixels, ``K`` its
    hidden width): expand output, BN output (h-swish saves its input; ReLU's saved output is the
    depthwise input) and activation at the input resolution; the same after the depthwise conv,
    plus the gated tensor and six ``K``-vectors per sample with SE; project output, layer
    output and loss difference (``3*Cout*P_out``). ``tests/test_stacked.py`` checks it against
    what autograd really saves.
    """
    total, size = 0, input_size
    for layer in block:
        spec = layer.spec
        out = (size - 1) // spec.stride + 1
        per_map = 2 + int(spec.activation != "relu")
        se = int(spec.use_se)
        total += (spec.hidden_channels * (per_map * size * size + (per_map + se) * out * out + 6 * se)
                  + 3 * spec.out_channels * out * out)
        size = out
    return total * batch_size * bytes_per_value


def _widest_tensor_bytes(block: nn.Sequential, batch_size: int, input_size: int) -> list[int]:
    """Per layer, the bytes one candidate adds to the layer's largest packed tensor (expand output)."""
    sizes, size = [], input_size
    for layer in block:
        sizes.append(layer.spec.hidden_channels * size * size * batch_size * 4)
        size = (size - 1) // layer.spec.stride + 1
    return sizes


def plan_chunks(blocks: Sequence[nn.Sequential], batch_size: int, input_size: int,
                memory_budget: int = DEFAULT_MEMORY_BUDGET, max_group: int = DEFAULT_MAX_GROUP,
                max_tensor_bytes: Optional[int] = None) -> list[list[int]]:
    """Consecutive chunks of ``blocks`` (indices) whose estimated activations fit ``memory_budget``.

    ``max_tensor_bytes`` also caps each packed activation tensor (see :func:`distill_stacked`).
    A candidate that alone exceeds a limit gets a chunk of its own.
    """
    if max_group < 1:
        raise ValueError("max_group must be >= 1")
    depth = max((len(b) for b in blocks), default=0)
    chunks: list[list[int]] = []
    current: list[int] = []
    used, widest = 0, [0] * depth
    for i, block in enumerate(blocks):
        need = candidate_activation_bytes(block, batch_size, input_size)
        wide = _widest_tensor_bytes(block, batch_size, input_size)
        too_wide = max_tensor_bytes is not None and any(w + v > max_tensor_bytes for w, v in zip(widest, wide))
        if current and (used + need > memory_budget or len(current) == max_group or too_wide):
            chunks.append(current)
            current, used, widest = [], 0, [0] * depth
        current.append(i)
        used += need
        widest = [w + v for w, v in zip(widest, wide)] + widest[len(wide):]  # per layer, packed bytes
    if current:
        chunks.append(current)
    return chunks


class _AddBias(torch.autograd.Function):
    """``y + bias`` for y [n, B, S], bias [n, S], with the bias gradient (a sum over B) taken by
    matmul: torch's sum over B of [n, B, S] sums in an order that depends on ``n``, and a
    candidate's result must not depend on its chunk companions."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return y + bias.unsqueeze(1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        ones = grad.new_ones(grad.shape[0], 1, grad.shape[1])
        return grad, torch.bmm(ones, grad).squeeze(1)


def _affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x @ weight + bias`` per copy: x [n, B, K], weight [n, K, S], bias [n, S]. The bias is added
    after the matmul, as the per-block conv does: folding it into the matmul changed the rounding
    of SE pre-activations that are exactly 0 in the reference (half of them in a trained one's
    last stage) and so the ReLU's gradient there."""
    return _AddBias.apply(torch.bmm(x, weight), bias)


class _Gate(torch.autograd.Function):
    """``x * gate`` for x [B, P, C], gate [B, C] (the SE multiply), the gate's gradient (a sum
    over pixels) by matmul, for the same reason as :class:`_AddBias`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, gate)
        return x * gate.unsqueeze(1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, gate = ctx.saved_tensors
        ones = x.new_ones(x.shape[0], 1, x.shape[1])
        return grad * gate.unsqueeze(1), torch.bmm(ones, grad * x).squeeze(1)


@dataclasses.dataclass
class _WidthClass:
    """The copies of one layer that share a hidden width: one batched matmul for all of them."""

    hidden: int        # K
    copies: list[int]  # copy ids, in the layer's packed order


@dataclasses.dataclass
class _Layer:
    spec: LayerSpec                      # in/out channels, stride, activation, SE, residual
    channels: int                        # packed hidden channels (sum of the copies' K)
    order: list[int]                     # copy ids in packed order
    classes: list[_WidthClass]
    slots: dict[int, tuple[int, int, int, int]]  # copy -> (class, index in class, first row, position)
    source: Optional[Index]  # positions of ``order`` in the previous layer's output (layers >= 1)
    finished: Optional[tuple[Index, list[int]]]  # positions and ids of copies whose block ends here
    tensors: dict[str, object] = dataclasses.field(default_factory=dict)


class StackedBlocks:
    """Candidate blocks of one stage packed into one wide block (see the module docstring).

    Per layer, the copies' tensors are packed: tensors indexed by hidden channel (expand conv,
    its BN, depthwise conv and BN, SE expand bias; the project weight transposed) as one
    tensor with a row per packed channel; the project BN with a row per output channel; the SE
    matrices as one ``[n_k, ...]`` tensor per width class. The constructor copies the blocks'
    tensors in, training goes through :meth:`losses` and :meth:`parameters`, and
    :meth:`write_back` copies each candidate's trained tensors back into its module.
    """

    def __init__(self, blocks: Sequence[nn.Sequential], device: torch.device | str | None = None) -> None:
        if not blocks:
            raise ValueError("nothing to stack: give at least one block")
        specs = _stage_specs(blocks)
        first = next(blocks[0].parameters())
        self.device = torch.device(device) if device is not None else first.device
        self.dtype = first.dtype
        self.copies = len(blocks)
        self.depths = [len(s) for s in specs]
        bns = [m for block in blocks for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
        self.bn_momentum, self.bn_eps = bns[0].momentum, bns[0].eps
        if any((bn.momentum, bn.eps) != (self.bn_momentum, self.bn_eps) for bn in bns):
            raise ValueError("all BatchNorm layers must share momentum and eps to be stacked")
        if self.bn_momentum is None:
            raise ValueError("BatchNorm with momentum=None (cumulative average) cannot be stacked")
        self.layers: list[_Layer] = []
        previous: Optional[dict[int, int]] = None  # copy -> position in the previous layer's output
        for o in range(max(self.depths)):
            active = [g for g in range(self.copies) if self.depths[g] > o]
            widths = sorted({specs[g][o].hidden_channels for g in active}, reverse=True)
            classes, order, slots, row = [], [], {}, 0
            for k, hidden in enumerate(widths):
                members = [g for g in active if specs[g][o].hidden_channels == hidden]
                for j, g in enumerate(members):
                    slots[g] = (k, j, row + j * hidden, len(order) + j)
                classes.append(_WidthClass(hidden, members))
                order += members
                row += len(members) * hidden
            ending = [g for g in order if self.depths[g] == o + 1]
            self.layers.append(_Layer(
                spec=specs[active[0]][o], channels=row, order=order, classes=classes, slots=slots,
                source=None if previous is None else _index([previous[g] for g in order], self.device),
                finished=(_index([slots[g][3] for g in ending], self.device), ending) if ending else None,
            ))
            previous = {g: i for i, g in enumerate(order)}
        self._embed(blocks)

    # --- packing ------------------------------------------------------------------------------
    def _slot(self, o: int, name: str, g: int, grad: bool = False) -> torch.Tensor:
        """The view of layer ``o``'s packed tensor ``name`` (or of its gradient) shaped like copy ``g``'s."""
        layer = self.layers[o]
        k, j, row, position = layer.slots[g]
        hidden, cout = layer.classes[k].hidden, layer.spec.out_channels
        kind, packed = _layout(name), layer.tensors[name]
        if grad:
            packed = [p.grad for p in packed] if isinstance(packed, list) else packed.grad
        if kind == "channel":
            return packed[row:row + hidden]
        if kind == "channel_t":
            return packed[row:row + hidden].t()[:, :, None, None]
        if kind == "copy":
            return packed[position * cout:(position + 1) * cout]
        return packed[k][j]

    @torch.no_grad()
    def _embed(self, blocks: Sequence[nn.Sequential]) -> None:
        kw = dict(device=self.device, dtype=self.dtype)
        for o, layer in enumerate(self.layers):
            some = blocks[layer.order[0]][o]
            params = {name for name, _ in some.named_parameters()}
            for name, t in some.state_dict().items():
                if name.endswith("num_batches_tracked"):
                    continue
                kind = _layout(name)
                if kind == "channel":
                    packed = torch.empty(layer.channels, *t.shape[1:], **kw)
                elif kind == "channel_t":
                    packed = torch.empty(layer.channels, t.shape[0], **kw)
                elif kind == "copy":
                    packed = torch.empty(len(layer.order) * t.shape[0], **kw)
                else:
                    packed = [torch.empty(len(c.copies), *blocks[c.copies[0]][o].state_dict()[name].shape, **kw)
                              for c in layer.classes]
                if name in params:
                    packed = [nn.Parameter(p) for p in packed] if kind == "class" else nn.Parameter(packed)
                layer.tensors[name] = packed
            for g in layer.order:
                for name, src in blocks[g][o].state_dict().items():
                    if not name.endswith("num_batches_tracked"):
                        self._slot(o, name, g).copy_(src)

    def parameters(self) -> list[nn.Parameter]:
        found = []
        for layer in self.layers:
            for packed in layer.tensors.values():
                for p in packed if isinstance(packed, list) else [packed]:
                    if isinstance(p, nn.Parameter):
                        found.append(p)
        return found

    @torch.no_grad()
    def write_back(self, blocks: Sequence[nn.Sequential], steps: int) -> None:
        """Copy each candidate's trained tensors into its block (in place); BN counters advance by ``steps``."""
        for g, block in enumerate(blocks):
            for o, layer in enumerate(block):
                for name, dst in layer.state_dict().items():
                    if name.endswith("num_batches_tracked"):
                        dst.add_(steps)  # one train-mode forward per step, as nn.BatchNorm2d counts
                    else:
                        dst.copy_(self._slot(o, name, g))

    # --- forward -----------------------------------------------------------------------------
    def _bn(self, x: torch.Tensor, t: dict, name: str) -> torch.Tensor:
        return F.batch_norm(x, t[name + ".running_mean"], t[name + ".running_var"], t[name + ".weight"],
                            t[name + ".bias"], training=True, momentum=self.bn_momentum, eps=self.bn_eps)

    def _layer(self, o: int, x: torch.Tensor, size: tuple[int, int, int]) -> tuple[torch.Tensor, tuple]:
        """Layer ``o`` on pixel rows ``x`` ([B*h*w, Cin] shared for o = 0, else [B*h*w, n_prev*C])."""
        layer, t = self.layers[o], self.layers[o].tensors
        spec, n = layer.spec, len(layer.order)
        batch, height, width = size
        cin, cout = spec.in_channels, spec.out_channels
        sizes = [len(c.copies) * c.hidden for c in layer.classes]  # packed channels per class
        # Split (not index) per class: a split's backward is one cat, an index's a full-size scatter.
        w_expand = t["expand.conv.weight"].flatten(1)  # [sum K, Cin]
        if o == 0:  # the shared teacher input: one matmul for every copy
            h = x @ w_expand.t()
        else:       # per width class, one matmul batched over its copies
            x = _take(x.view(x.shape[0], -1, cin), layer.source)  # [B*P, n, C] in this layer's order
            parts = []
            for c, xk, wk in zip(layer.classes, x.split([len(c.copies) for c in layer.classes], 1),
                                 w_expand.split(sizes)):
                y = torch.bmm(xk.transpose(0, 1), wk.view(len(c.copies), c.hidden, cin).transpose(1, 2))
                parts.append(y.transpose(0, 1).reshape(x.shape[0], -1))  # [B*P, n_k*K]
            h = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        h = _act(spec.activation, self._bn(_nchw(h, batch, height, width), t, "expand.bn"))
        h = F.conv2d(h, t["depthwise.conv.weight"], stride=spec.stride, padding=1, groups=h.shape[1])
        h = _act(spec.activation, self._bn(h, t, "depthwise.bn"))
        height, width = h.shape[2:]
        if spec.use_se:
            pixels = height * width
            rows = _rows(h).view(batch, pixels, -1)
            # Pool by matmul: torch's mean over the pixels of [B, P, sum K] sums in an order that
            # depends on sum K, and a candidate's result must not depend on its chunk companions.
            pooled = torch.matmul(h.new_full((1, pixels), 1 / pixels), rows).squeeze(1)
            gates = []
            for k, (c, s, bias) in enumerate(zip(layer.classes, pooled.split(sizes, 1),
                                                 t["se.expand.bias"].split(sizes))):
                s = s.view(batch, len(c.copies), c.hidden).transpose(0, 1)  # [n_k, B, K]
                s = F.relu(_affine(s, t["se.reduce.weight"][k].flatten(2).transpose(1, 2), t["se.reduce.bias"][k]))
                s = _affine(s, t["se.expand.weight"][k].flatten(2).transpose(1, 2), bias.view(len(c.copies), -1))
                gates.append(s.transpose(0, 1).reshape(batch, -1))
            gate = F.hardsigmoid(gates[0] if len(gates) == 1 else torch.cat(gates, 1))
            h = _Gate.apply(rows, gate).view(-1, layer.channels)
        else:
            h = _rows(h)
        parts = []
        for c, hk, wk in zip(layer.classes, h.split(sizes, 1), t["project.conv.weight"].split(sizes)):
            hk = hk.view(h.shape[0], len(c.copies), c.hidden).transpose(0, 1)  # [n_k, B*P, K]
            parts.append(torch.bmm(hk, wk.view(len(c.copies), c.hidden, cout)))
        y = parts[0] if len(parts) == 1 else torch.cat(parts, 0)               # [n, B*P, Cout]
        y = y.transpose(0, 1).reshape(h.shape[0], n * cout)
        y = _rows(self._bn(_nchw(y, batch, height, width), t, "project.bn"))
        if spec.residual:
            # o = 0: the shared input, broadcast over the copies; later: each copy's own input.
            y = (y.view(-1, n, cout) + (x.unsqueeze(1) if o == 0 else x)).view(-1, n * cout)
        return y, (batch, height, width)

    def _run(self, x: torch.Tensor):
        """Yield ``(copy ids, [B*h*w, m, Cout] outputs, size)`` for the copies ending at each layer."""
        size = (x.shape[0], x.shape[2], x.shape[3])
        rows = _rows(x)
        for o, layer in enumerate(self.layers):
            rows, size = self._layer(o, rows, size)
            if layer.finished is not None:
                positions, ids = layer.finished
                yield ids, _take(rows.view(rows.shape[0], -1, layer.spec.out_channels), positions), size

    def outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per copy, its candidate's output ``[B, Cout, h, w]`` (for tests and inspection)."""
        out: list[Optional[torch.Tensor]] = [None] * self.copies
        for ids, y, (batch, height, width) in self._run(x):
            for i, g in enumerate(ids):
                out[g] = _nchw(y[:, i], batch, height, width)
        return out  # type: ignore[return-value]

    def losses(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per copy ``F.mse_loss(candidate(x), target)`` (mean over batch, channels, pixels): ``[G]``."""
        target = _rows(target).unsqueeze(1)  # [B*P, 1, Cout]
        ids, values = [], []
        for finished, y, _ in self._run(x):
            ids += finished
            # One contiguous row per copy: the sum order must not depend on how many copies there are.
            values.append((y - target).transpose(0, 1).reshape(y.shape[1], -1).pow(2).mean(1))
        values = torch.cat(values)
        return values[torch.tensor(ids, device=values.device).argsort()]


def distill_stacked(blocks: Mapping[Hashable, nn.Sequential], teacher: StageTeacher, recipe: DistillRecipe,
                    should_stop: Optional[StopFn] = None,
                    on_chunk_done: Optional[Callable[[dict[Hashable, DistillStats]], None]] = None,
                    *, memory_budget: int = DEFAULT_MEMORY_BUDGET, max_group: int = DEFAULT_MAX_GROUP,
                    cpu_tensor_bytes: Optional[int] = DEFAULT_CPU_TENSOR_BYTES) -> dict[Hashable, DistillStats]:
    """Train ``blocks`` (in place) to match the teacher's stage output: :func:`distill_blocks`'s contract.

    Same optimizer, hyper-parameters, steps, loss and stats as the per-block engine. Blocks are
    trained in stacked chunks, in the given order, sized by ``memory_budget`` (bytes of saved
    activations), ``max_group`` and, on CPU, ``cpu_tensor_bytes`` instead of
    ``recipe.chunk_size``. After each chunk its trained tensors are in the given modules,
    ``on_chunk_done`` receives its stats and ``should_stop`` is checked. Training runs on the
    teacher tensors' device.

    ``cpu_tensor_bytes`` caps each packed activation tensor on CPU (None: no cap): past a few
    MiB per tensor CPU kernels are memory-bound, so stacking more candidates saves no overhead,
    and fresh allocations above glibc's mmap threshold are page-faulted on every step (the
    default's measurement: docs/core-api.md, "Speed notes"). Accelerators cache their
    allocations and want wide kernels, so the cap is not applied there.
    """
    keys = list(blocks)
    stats: dict[Hashable, DistillStats] = {}
    if not keys:
        return stats
    steps = min(recipe.batches, len(teacher.inputs))
    modules = [blocks[k] for k in keys]
    if steps:
        x0 = teacher.inputs[0]
        cap = cpu_tensor_bytes if x0.device.type == "cpu" else None
        chunks = plan_chunks(modules, x0.shape[0], x0.shape[-1], memory_budget, max_group, cap)
    else:
        chunks = [list(range(len(modules)))]
    for members in chunks:
        history = torch.zeros(len(members), max(steps, 1))
        if steps:
            device = teacher.inputs[0].device
            stack = StackedBlocks([modules[i] for i in members], device=device)
            optimizer = make_optimizer(stack.parameters(), recipe)
            on_device = history.to(device)  # no host sync per step on an accelerator
            for t in range(steps):
                losses = stack.losses(teacher.inputs[t], teacher.targets[t])
                optimizer.zero_grad(set_to_none=True)
                losses.sum().backward()
                optimizer.step()
                on_device[:, t] = losses.detach()
            history = on_device.cpu()
            stack.write_back([modules[i] for i in members], steps)
            del stack, optimizer
        for i in members:
            modules[i].train()  # as the per-block engine leaves them
        chunk_stats = {keys[i]: DistillStats.from_losses(history[j], steps) for j, i in enumerate(members)}
        stats.update(chunk_stats)
        if on_chunk_done is not None:
            on_chunk_done(chunk_stats)
        check_stop(should_stop)
    return {k: stats[k] for k in keys}
