"""Latency lookup tables: per-block latency measured on one device, summed to predict a network's.

Every network of a space is ``prefix -> one candidate block per stage -> head`` and each part
runs on the previous part's output, whose shape the space fixes. A table therefore stores the
measured latency of the prefix, of the head and of each candidate block of each stage (keyed
by stage and block code, e.g. stage 2 / ``"6642"``), and predicts an architecture's latency as
the sum of its parts — once-for-all's and ProxylessNAS's latency-lookup idea, at the
granularity of the zoo's blocks — optionally times a ``scale`` fitted on a few measured
networks (:meth:`LatencyTable.calibrate`).

Measuring one part: a fresh module (random weights, eval mode), a random input of the
part's shape at ``batch_size``, ``torch.inference_mode``, ``warmup`` untimed runs, then the
minimum (or median) of timed runs spread over interleaved rounds (:class:`Timing`); on CUDA
each timed run is synchronised. The paper's space has 780 candidate blocks per stage, so
blocks are measured lazily: the first prediction that needs a block measures it (``ensure``
measures a batch of architectures' blocks up front, interleaved; ``measure(blocks="all")``
the whole space). Latency depends on the machine, the torch version and the thread count,
so a table records ``machine`` and measures new blocks only on a matching one; elsewhere it
predicts from stored entries only. Validation against end-to-end measurements of assembled
networks: ``bench/latency.py``.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import torch
from torch import nn

from .files import write_atomic
from .nets import Head, build_block, build_network, build_prefix
from .progress import ProgressFn, StopFn, check_stop, report
from .space import Architecture, ArchitectureError, SearchSpace, block_code

TABLE_VERSION = 1
BlockKey = tuple[int, tuple[int, ...]]  # (stage index, expansion ratios)
Part = Union[str, BlockKey]             # "prefix", "head" or a block
MEASURE_CHUNK = 64                      # parts timed interleaved between progress/cancel checks


class LatencyTableError(ValueError):
    """A table that cannot answer: missing entries it may not measure here, or the wrong space."""


def machine_description(device: Union[str, torch.device] = "cpu") -> str:
    """What latency depends on besides the network: device model, torch version, CPU threads."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_model()
    return f"{device.type}: {name}; torch {torch.__version__}; {torch.get_num_threads()} threads"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


STATISTICS = ("min", "median")
CLOCKS = ("wall", "thread")


@dataclass(frozen=True)
class Timing:
    """How latencies are measured: ``warmup`` untimed runs per module, then ``rounds`` rounds
    that each time every module ``repeats`` times in turn; the latency is the ``statistic``
    of all its timed runs.

    Other processes only ever add time, and they come and go: the minimum over several
    interleaved rounds gives every module a chance at a quiet moment (``statistic="median"``
    reports typical latency instead). ``clock="thread"`` times the calling thread's CPU
    time, which excludes waiting for a core; it is valid on CPU with one intra-op thread
    (``torch.set_num_threads(1)``) and is steadier under load (docs/core-api.md, "Speed notes").
    """

    warmup: int = 5
    repeats: int = 5
    rounds: int = 5
    statistic: str = "min"
    clock: str = "wall"

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.repeats < 1 or self.rounds < 1:
            raise ValueError("timing needs warmup >= 0, repeats >= 1 and rounds >= 1")
        if self.statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {list(STATISTICS)}, got {self.statistic!r}")
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {list(CLOCKS)}, got {self.clock!r}")

    def check_device(self, device: torch.device) -> None:
        if self.clock == "thread" and (device.type != "cpu" or torch.get_num_threads() != 1):
            raise ValueError("clock='thread' measures CPU time of the calling thread: use it on CPU with "
                             "torch.set_num_threads(1), or use clock='wall'")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.inference_mode()
def measure_many(items: Sequence[tuple[nn.Module, torch.Tensor]], timing: Timing = Timing()) -> list[float]:
    """Latency in milliseconds of each ``module(example)`` in eval and inference mode, the
    modules timed in turn (interleaved, so a burst of load hits them all alike)."""
    if not items:
        return []
    device = items[0][1].device
    timing.check_device(device)
    clock = time.thread_time if timing.clock == "thread" else time.perf_counter
    for module, example in items:
        module.eval()
        for _ in range(timing.warmup):
            module(example)
    _sync(device)
    samples: list[list[float]] = [[] for _ in items]
    for _ in range(timing.rounds):
        for (module, example), times in zip(items, samples):
            for _ in range(timing.repeats):
                start = clock()
                module(example)
                _sync(device)
                times.append(clock() - start)
    pick = min if timing.statistic == "min" else statistics.median
    return [1000 * pick(times) for times in samples]


def measure_ms(module: nn.Module, example: torch.Tensor, timing: Timing = Timing()) -> float:
    """Latency in milliseconds of ``module(example)`` (see :func:`measure_many`)."""
    return measure_many([(module, example)], timing)[0]


def _random_input(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)


def measure_networks_ms(space: SearchSpace, archs: Sequence[Architecture], in_channels: int,
                        num_classes: int, *, batch_size: int = 1, device: Union[str, torch.device] = "cpu",
                        timing: Timing = Timing()) -> list[float]:
    """End-to-end latency of each assembled network (what a table predicts), timed interleaved."""
    device = torch.device(device)
    with torch.random.fork_rng(devices=[]):  # random weights without touching the caller's RNG
        nets = [build_network(space, arch, in_channels, num_classes).to(device) for arch in archs]
    x = _random_input((batch_size, in_channels, space.input_size, space.input_size), device)
    return measure_many([(net, x) for net in nets], timing)


class LatencyTable:
    """Measured latency (ms) of a space's prefix, head and candidate blocks on one device."""

    def __init__(self, space: SearchSpace, in_channels: int, num_classes: int, *, batch_size: int = 1,
                 device: Union[str, torch.device] = "cpu", timing: Timing = Timing(),
                 machine: Optional[str] = None, prefix_ms: Optional[float] = None,
                 head_ms: Optional[float] = None, blocks: Optional[dict[BlockKey, float]] = None,
                 scale: float = 1.0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.space = space
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.timing = timing
        self.machine = machine or machine_description(self.device)
        self.prefix_ms = prefix_ms
        self.head_ms = head_ms
        self.blocks: dict[BlockKey, float] = dict(blocks or {})
        self.scale = scale  # measured / summed latency, fitted by calibrate(); 1 = plain sum

    # --- measuring ---------------------------------------------------------------------------
    @classmethod
    def measure(cls, space: SearchSpace, in_channels: int, num_classes: int, *, batch_size: int = 1,
                device: Union[str, torch.device] = "cpu", timing: Timing = Timing(),
                blocks: Union[str, Iterable[BlockKey]] = "lazy", progress: Optional[ProgressFn] = None,
                should_stop: Optional[StopFn] = None) -> "LatencyTable":
        """A table for this machine: prefix, head and the smallest block of every stage now;
        further blocks: ``"lazy"`` (on first use), ``"all"`` (every block of every stage), or
        the given ``(stage, expand)`` pairs."""
        table = cls(space, in_channels, num_classes, batch_size=batch_size, device=device, timing=timing)
        smallest = [(m, e) for m, e in enumerate(space.smallest.expand)]
        if blocks == "lazy":
            wanted = smallest
        elif blocks == "all":
            wanted = [(m, e) for m in range(space.num_stages) for e in space.stage_blocks(m)]
        elif isinstance(blocks, str):
            raise ValueError(f"blocks must be 'lazy', 'all' or (stage, expand) pairs; got {blocks!r}")
        else:
            wanted = smallest + [(m, tuple(e)) for m, e in blocks]
        table._measure_parts(["prefix", "head"])
        table.measure_blocks(wanted, progress=progress, should_stop=should_stop)
        return table

    @property
    def can_measure(self) -> bool:
        """True on the machine (and thread count) the table was measured on."""
        return self.machine == machine_description(self.device)

    def _input_shape(self, stage: int) -> tuple[int, ...]:
        """Shape of the feature entering ``stage`` (``num_stages``: entering the head)."""
        if stage == 0:
            channels, size = self.space.stem_channels, self.space.input_size
        else:
            channels, size = self.space.widths[stage - 1], self.space.output_size(stage - 1)
        return (self.batch_size, channels, size, size)

    def _module(self, part: Part) -> tuple[nn.Module, torch.Tensor]:
        """A randomly initialised module for ``part`` and an input of its shape."""
        with torch.random.fork_rng(devices=[]):
            if part == "prefix":
                module: nn.Module = build_prefix(self.space, self.in_channels)
                shape = (self.batch_size, self.in_channels, self.space.input_size, self.space.input_size)
            elif part == "head":
                module, shape = Head(self.space, self.num_classes), self._input_shape(self.space.num_stages)
            else:
                stage, expand = part
                self.space.validate(_probe(self.space, stage, expand))
                module, shape = build_block(self.space, stage, expand), self._input_shape(stage)
        return module.to(self.device), _random_input(shape, self.device)

    def _measure_parts(self, parts: Sequence[Part], progress: Optional[ProgressFn] = None,
                       should_stop: Optional[StopFn] = None) -> None:
        """Measure and store ``parts``, interleaved in chunks of ``MEASURE_CHUNK``."""
        if not parts:
            return
        if not self.can_measure:
            raise LatencyTableError(
                f"{_part_name(parts[0])} is not in the latency table measured on [{self.machine}]; "
                f"this machine is [{machine_description(self.device)}], so it cannot be measured "
                "here: measure a table on the device that will run the networks"
            )
        for start in range(0, len(parts), MEASURE_CHUNK):
            check_stop(should_stop)
            chunk = parts[start:start + MEASURE_CHUNK]
            for part, ms in zip(chunk, measure_many([self._module(p) for p in chunk], self.timing)):
                if isinstance(part, str):
                    setattr(self, f"{part}_ms", ms)
                else:
                    self.blocks[part] = ms
            done = start + len(chunk)
            report(progress, done / len(parts), f"measured latency of {done}/{len(parts)} parts")

    def measure_blocks(self, keys: Iterable[BlockKey], progress: Optional[ProgressFn] = None,
                       should_stop: Optional[StopFn] = None) -> int:
        """Measure the given ``(stage, expand)`` blocks that the table lacks; returns the count."""
        missing = list(dict.fromkeys((m, tuple(e)) for m, e in keys if (m, tuple(e)) not in self.blocks))
        self._measure_parts(missing, progress, should_stop)
        return len(missing)

    def ensure(self, archs: Iterable[Architecture], progress: Optional[ProgressFn] = None,
               should_stop: Optional[StopFn] = None) -> int:
        """Measure the blocks ``archs`` need that the table lacks (lazy build in one go)."""
        return self.measure_blocks(((m, e) for a in archs for m, e in enumerate(a.expand)), progress,
                                   should_stop)

    # --- predicting ----------------------------------------------------------------------------
    def block_ms(self, stage: int, expand: tuple[int, ...]) -> float:
        """Latency of one candidate block (measured now if missing)."""
        key = (stage, tuple(expand))
        if key not in self.blocks:
            self.measure_blocks([key])
        return self.blocks[key]

    def breakdown(self, arch: Architecture) -> dict[str, float]:
        """Predicted latency per part: ``prefix``, ``s1:<code>`` ... ``s<M>:<code>``, ``head``."""
        arch = self.space.parse(arch)
        parts = {"prefix": self._fixed("prefix")}
        for m, expand in enumerate(arch.expand):
            parts[f"s{m + 1}:{block_code(expand)}"] = self.block_ms(m, expand)
        parts["head"] = self._fixed("head")
        return parts

    def predict(self, arch: Union[Architecture, dict, str]) -> float:
        """Predicted end-to-end latency (ms) of ``arch``: the sum of its parts, times ``scale``."""
        return self.scale * sum(self.breakdown(arch).values())

    def calibrate(self, archs: Sequence[Architecture]) -> float:
        """Fit ``scale`` = median of measured / summed latency over ``archs`` and return it.

        A part timed alone has its kernels, weights and allocations to itself; inside a network
        it shares them with the other parts, so the plain sum is off by a roughly constant
        factor that depends on the device and batch size (``bench/results/latency.md``).
        Calibrate on architectures other than those you validate on.
        """
        archs = [self.space.parse(a) for a in archs]
        if not archs:
            raise ValueError("calibrate needs at least one architecture")
        if not self.can_measure:
            raise LatencyTableError("calibrate measures networks: run it on the machine the table was "
                                    "measured on")
        sums = [sum(self.breakdown(a).values()) for a in archs]
        measured = measure_networks_ms(self.space, archs, self.in_channels, self.num_classes,
                                       batch_size=self.batch_size, device=self.device, timing=self.timing)
        self.scale = statistics.median(m / p for m, p in zip(measured, sums))
        return self.scale

    def _fixed(self, part: str) -> float:
        if getattr(self, f"{part}_ms") is None:
            self._measure_parts([part])
        return getattr(self, f"{part}_ms")

    def check_compatible(self, space: SearchSpace, in_channels: int, num_classes: int) -> None:
        """Refuse to predict for another space or input/output shape than the table's."""
        if space != self.space or in_channels != self.in_channels or num_classes != self.num_classes:
            raise LatencyTableError(
                f"the latency table is for space '{self.space.name}' with {self.in_channels} input "
                f"channels and {self.num_classes} classes; got space '{space.name}', {in_channels} "
                f"channels, {num_classes} classes"
            )

    def __len__(self) -> int:
        return len(self.blocks)

    # --- persistence -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        blocks: dict[str, dict[str, float]] = {}
        for (m, expand), ms in sorted(self.blocks.items()):
            blocks.setdefault(f"s{m + 1}", {})[block_code(expand)] = ms
        return {
            "version": TABLE_VERSION, "space": self.space.to_dict(), "in_channels": self.in_channels,
            "num_classes": self.num_classes, "batch_size": self.batch_size, "device": str(self.device),
            "machine": self.machine, "timing": self.timing.to_dict(), "unit": "ms",
            "scale": self.scale, "prefix_ms": self.prefix_ms, "head_ms": self.head_ms, "blocks": blocks,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LatencyTable":
        if data.get("version") != TABLE_VERSION:
            raise LatencyTableError(f"unsupported latency table version {data.get('version')!r}")
        space = SearchSpace.from_dict(data["space"])
        blocks = {
            (int(stage[1:]) - 1, tuple(int(c, 36) for c in code)): float(ms)
            for stage, entries in data["blocks"].items() for code, ms in entries.items()
        }
        return cls(space, data["in_channels"], data["num_classes"], batch_size=data["batch_size"],
                   device=data["device"], timing=Timing(**data["timing"]), machine=data["machine"],
                   prefix_ms=data["prefix_ms"], head_ms=data["head_ms"], blocks=blocks,
                   scale=float(data.get("scale", 1.0)))

    def save(self, path: Union[str, Path]) -> None:
        """Write the table as JSON, atomically (temp file + rename)."""
        write_atomic(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: Union[str, Path]) -> "LatencyTable":
        return cls.from_dict(json.loads(Path(path).read_text()))


def _part_name(part: Part) -> str:
    return part if isinstance(part, str) else f"block {block_code(part[1])} of stage {part[0] + 1}"


def _probe(space: SearchSpace, stage: int, expand: tuple[int, ...]) -> Architecture:
    """The smallest architecture with ``expand`` in ``stage``: validates a block key."""
    if not 0 <= stage < space.num_stages:
        raise ArchitectureError(f"stage index {stage} out of range: the space has {space.num_stages} stages")
    blocks = list(space.smallest.expand)
    blocks[stage] = tuple(expand)
    return Architecture(tuple(len(e) for e in blocks), tuple(blocks))
