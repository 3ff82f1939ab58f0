"""Measuring latency tables on this machine (torch): parts timed alone, networks end to end, calibration.

Measuring one part: a module with random weights in eval mode, a random input of the part's
shape at the table's batch size, ``torch.inference_mode``, ``warmup`` untimed runs, then the
minimum (or median) of timed runs spread over interleaved rounds (:class:`~.table.Timing`); on
CUDA each timed run is synchronised. Parts are timed in chunks of ``MEASURE_CHUNK``, between
which progress is reported and cancellation honoured.

A block is a sequence of MBConv layers whose shapes depend only on the stage, the layer's
position and its expansion ratio, so the layer modules are built once per (stage, position,
ratio) and every block is assembled from them: each layer of a block is its own module with
its own weights, as in a network, and the space's thousands of blocks cost a few dozen module
constructions.

Latency depends on the machine, the torch version and the thread count, so a table records
``machine`` and measures new entries only on a matching one. Validation against end-to-end
measurements of assembled networks: ``bench/latency.py``.
"""

from __future__ import annotations

import math
import platform
import statistics
import time
from datetime import datetime, timezone
from typing import Any, Iterable, Optional, Sequence, Union

import torch
from torch import nn

from ..nets import Head, MBConv, build_network, build_prefix
from ..progress import ProgressFn, StopFn, check_stop, report
from ..space import Architecture, ArchitectureError, SearchSpace, sample_architectures, unique
from .table import BlockKey, Calibration, CalibrationPoint, LatencyTable, LatencyTableError, Part, Timing, part_name

MEASURE_CHUNK = 64  # parts timed interleaved between progress/cancel checks
NETWORK_CHUNK = 20  # whole networks timed interleaved (calibration, validation)


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


def check_timing(timing: Timing, device: Union[str, torch.device]) -> None:
    """``clock="thread"`` measures the calling thread's CPU time: only latency on CPU with one thread."""
    if timing.clock == "thread" and (torch.device(device).type != "cpu" or torch.get_num_threads() != 1):
        raise ValueError("clock='thread' measures CPU time of the calling thread: use it on CPU with "
                         "torch.set_num_threads(1), or use clock='wall'")


@torch.inference_mode()
def measure_many(items: Sequence[tuple[nn.Module, torch.Tensor]], timing: Timing = Timing()) -> list[float]:
    """Latency in milliseconds of each ``module(example)`` in eval and inference mode, the
    modules timed in turn (interleaved, so a burst of load hits them all alike)."""
    if not items:
        return []
    device = items[0][1].device
    check_timing(timing, device)
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


def _random_input(shape: Sequence[int], device: torch.device) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(0)).to(device)


def measure_networks_ms(space: SearchSpace, archs: Sequence[Architecture], in_channels: int,
                        num_classes: int, *, batch_size: int = 1, device: Union[str, torch.device] = "cpu",
                        timing: Timing = Timing()) -> list[float]:
    """End-to-end latency of each assembled network (what a table predicts), timed interleaved in
    chunks of ``NETWORK_CHUNK``: the networks timed together share the caches, so many at once
    would each run colder than a deployed network does."""
    device = torch.device(device)
    x = _random_input((batch_size, in_channels, space.input_size, space.input_size), device)
    out: list[float] = []
    for start in range(0, len(archs), NETWORK_CHUNK):
        with torch.random.fork_rng(devices=[]):  # random weights without touching the caller's RNG
            nets = [build_network(space, arch, in_channels, num_classes).to(device)
                    for arch in archs[start:start + NETWORK_CHUNK]]
        out += measure_many([(net, x) for net in nets], timing)
    return out


class _PartModules:
    """Modules and inputs for a table's parts; block layers built once per (stage, position, ratio)."""

    def __init__(self, table: LatencyTable) -> None:
        self.table = table
        self.device = torch.device(table.device)
        self.shapes = table.shapes()
        self.layers: dict[tuple[int, int, int], nn.Module] = {}

    def layer(self, stage: int, position: int, ratio: int) -> nn.Module:
        key = (stage, position, ratio)
        if key not in self.layers:
            spec = self.table.space.layer_specs(stage, (ratio,) * (position + 1))[position]
            self.layers[key] = MBConv(spec).to(self.device)
        return self.layers[key]

    def __call__(self, part: Part) -> tuple[nn.Module, torch.Tensor]:
        space = self.table.space
        with torch.random.fork_rng(devices=[]):  # random weights without touching the caller's RNG
            if part == "prefix":
                module: nn.Module = build_prefix(space, self.table.in_channels).to(self.device)
                shape = self.shapes["prefix"]
            elif part == "head":
                module, shape = Head(space, self.table.num_classes).to(self.device), self.shapes["head"]
            else:
                stage, expand = part
                space.validate(_probe(space, stage, expand))
                module = nn.Sequential(*(self.layer(stage, p, r) for p, r in enumerate(expand)))
                shape = self.shapes[f"s{stage + 1}"]
        return module, _random_input(shape, self.device)


def can_measure(table: LatencyTable) -> bool:
    """True on the machine (and thread count) the table was measured on, or for a table not measured yet."""
    return table.machine is None or table.machine == machine_description(table.device)


def measure_parts(table: LatencyTable, parts: Sequence[Part], progress: Optional[ProgressFn] = None,
                  should_stop: Optional[StopFn] = None) -> None:
    """Measure and store ``parts`` in ``table``, interleaved in chunks of ``MEASURE_CHUNK``."""
    if not parts:
        return
    if not can_measure(table):
        raise LatencyTableError(
            f"{part_name(parts[0])} is not in the latency table measured on [{table.machine}]; "
            f"this machine is [{machine_description(table.device)}], so it cannot be measured "
            "here: measure a table on the device that will run the networks"
        )
    if table.machine is None:
        table.machine = machine_description(table.device)
        table.torch_version = torch.__version__
    modules = _PartModules(table)
    for start in range(0, len(parts), MEASURE_CHUNK):
        check_stop(should_stop)
        chunk = parts[start:start + MEASURE_CHUNK]
        for part, ms in zip(chunk, measure_many([modules(p) for p in chunk], table.timing)):
            if isinstance(part, str):
                setattr(table, f"{part}_ms", ms)
            else:
                table.blocks[part] = ms
        done = start + len(chunk)
        report(progress, done / len(parts), f"measured latency of {done}/{len(parts)} parts")


def measure_table(space: SearchSpace, in_channels: int, num_classes: int, *, batch_size: int = 1,
                  device: Union[str, torch.device] = "cpu", timing: Timing = Timing(),
                  blocks: Union[str, Iterable[BlockKey]] = "all", progress: Optional[ProgressFn] = None,
                  should_stop: Optional[StopFn] = None) -> LatencyTable:
    """A table for this machine: prefix, head and the smallest block of every stage, then
    ``blocks``: ``"all"`` (every candidate block of every stage), ``"lazy"`` (the rest on first
    use) or the given ``(stage, expand)`` pairs."""
    device = torch.device(device)
    check_timing(timing, device)
    table = LatencyTable(space, in_channels, num_classes, batch_size=batch_size, device=str(device), timing=timing,
                         machine=machine_description(device), torch_version=torch.__version__,
                         created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    smallest = [(m, e) for m, e in enumerate(space.smallest.expand)]
    if blocks == "lazy":
        wanted = smallest
    elif blocks == "all":
        wanted = [(m, e) for m in range(space.num_stages) for e in space.stage_blocks(m)]
    elif isinstance(blocks, str):
        raise ValueError(f"blocks must be 'lazy', 'all' or (stage, expand) pairs; got {blocks!r}")
    else:
        wanted = smallest + [(m, tuple(e)) for m, e in blocks]
    wanted = list(dict.fromkeys(wanted))
    measure_parts(table, ["prefix", "head", *wanted], progress=progress, should_stop=should_stop)
    return table


def fit_scale(ratios: Sequence[float], coverage: float = 0.5) -> float:
    """The scale that makes about ``coverage`` of networks run no slower than predicted.

    ``ratios`` are measured / summed latencies of calibration networks. Coverage 0.5: their
    median. Above: the median times an upper prediction bound of the ratios' spread (log
    ratios taken as normal, Student's t with ``len(ratios) - 1`` degrees of freedom, widened by
    ``sqrt(1 + 1/K)`` for a new network), so few calibration networks give a wider margin.
    """
    if not ratios:
        raise ValueError("calibration needs at least one architecture")
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be in (0, 1), got {coverage}")
    center = statistics.median(ratios)
    if coverage == 0.5:
        return center
    if len(ratios) < 2:
        raise ValueError("a coverage other than 0.5 needs at least 2 calibration architectures")
    from scipy.stats import t

    spread = statistics.stdev(math.log(r) for r in ratios)
    k = len(ratios)
    return center * math.exp(float(t.ppf(coverage, k - 1)) * spread * math.sqrt(1 + 1 / k))


def calibrate(table: LatencyTable, archs: Sequence[Any], coverage: float = 0.5) -> float:
    """Time ``archs`` end to end, fit ``table.scale`` (:func:`fit_scale`) and record the calibration."""
    archs = [table.space.parse(a) for a in archs]
    if not archs:
        raise ValueError("calibrate needs at least one architecture")
    if not can_measure(table):
        raise LatencyTableError("calibrate measures networks: run it on the machine the table was measured on")
    table.ensure(archs)
    sums = [sum(table.breakdown(a).values()) for a in archs]
    measured = measure_networks_ms(table.space, archs, table.in_channels, table.num_classes,
                                   batch_size=table.batch_size, device=table.device, timing=table.timing)
    points = tuple(CalibrationPoint(a.id, s, m) for a, s, m in zip(archs, sums, measured))
    table.scale = fit_scale([p.ratio for p in points], coverage)
    table.calibration = Calibration(coverage, points)
    return table.scale


def measure_calibrated_table(space: SearchSpace, in_channels: int, num_classes: int, *, batch_size: int = 1,
                             device: Union[str, torch.device] = "cpu", timing: Timing = Timing(),
                             architectures: int = 0, coverage: float = 0.95, seed: int = 0,
                             progress: Optional[ProgressFn] = None,
                             should_stop: Optional[StopFn] = None) -> LatencyTable:
    """The complete table of a space (every candidate block, prefix and head), calibrated on
    ``architectures`` random networks (seeded by ``seed``; 0: no calibration, scale 1) to
    ``coverage``: what ``blockzoo latency measure`` writes and the service's measuring job stores."""
    if architectures < 0:
        raise ValueError(f"architectures must be >= 0, got {architectures}")
    share = 0.0 if architectures == 0 else 0.9  # of the progress spent on the blocks

    def blocks_progress(fraction: float, message: str) -> None:
        report(progress, share * fraction if architectures else fraction, message)

    table = measure_table(space, in_channels, num_classes, batch_size=batch_size, device=device, timing=timing,
                          blocks="all", progress=blocks_progress, should_stop=should_stop)
    if architectures:
        check_stop(should_stop)
        archs = unique(sample_architectures(space, architectures, seed))
        report(progress, share, f"timing {len(archs)} calibration networks end to end")
        calibrate(table, archs, coverage)
        report(progress, 1.0, f"calibrated: scale {table.scale:.3f} on {len(archs)} networks")
    return table


def _probe(space: SearchSpace, stage: int, expand: tuple[int, ...]) -> Architecture:
    """The smallest architecture with ``expand`` in ``stage``: validates a block key."""
    if not 0 <= stage < space.num_stages:
        raise ArchitectureError(f"stage index {stage} out of range: the space has {space.num_stages} stages")
    blocks = list(space.smallest.expand)
    blocks[stage] = tuple(expand)
    return Architecture(tuple(len(e) for e in blocks), tuple(blocks))
