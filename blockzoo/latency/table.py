"""A latency lookup table as data: read, check, predict, write. Pure Python, no torch.

Every network of a space is ``prefix -> one candidate block per stage -> head`` and each part
runs on the previous part's output, whose shape the space fixes. A table stores the measured
latency of the prefix, of the head and of each candidate block of each stage (keyed by stage
and block code, e.g. stage 2 / ``"6642"``), and predicts an architecture's latency as the sum
of its parts — once-for-all's and ProxylessNAS's latency-lookup idea, at the granularity of
the zoo's blocks — times a ``scale`` fitted on measured networks (:class:`Calibration`).

A table is self-describing: the space's full definition, the input shape of every part, the
device, the machine and torch version it was measured with, the timing settings, and the
calibration networks' summed and measured latencies. :meth:`LatencyTable.from_dict` checks all
of it, so a table read from an untrusted file either fits its space or is refused with the
reason. Measuring lives in :mod:`blockzoo.latency.measure` (torch); the measuring methods
here call into it only when used, so that the API process can check tables and predict with
them without importing torch.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import string
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

from ..files import write_atomic
from ..progress import ProgressFn, StopFn
from ..space import Architecture, ArchitectureError, SearchSpace, block_code

TABLE_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1: no shapes, torch version or calibration networks
FORMAT = "blockzoo-latency-table"
MAX_BLOCKS = 100_000        # a space with more candidate blocks cannot be measured block by block
MAX_CALIBRATION = 10_000

BlockKey = tuple[int, tuple[int, ...]]  # (stage index, expansion ratios)
Part = Union[str, BlockKey]             # "prefix", "head" or a block

STATISTICS = ("min", "median")
CLOCKS = ("wall", "thread")


class LatencyTableError(ValueError):
    """A table that cannot answer (missing entries, another space) or that does not fit its space."""


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
        for name in ("warmup", "repeats", "rounds"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int):
                raise ValueError(f"timing {name} must be an integer, got {getattr(self, name)!r}")
        if self.warmup < 0 or self.repeats < 1 or self.rounds < 1:
            raise ValueError("timing needs warmup >= 0, repeats >= 1 and rounds >= 1")
        if self.statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {list(STATISTICS)}, got {self.statistic!r}")
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {list(CLOCKS)}, got {self.clock!r}")

    def check_device(self, device: Any) -> None:
        """Refuse ``clock="thread"`` where it does not measure latency (see :mod:`.measure`)."""
        from .measure import check_timing

        check_timing(self, device)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CalibrationPoint:
    """One calibration network: its summed parts (scale 1) and its measured end-to-end latency."""

    arch_id: str
    summed_ms: float
    measured_ms: float

    @property
    def ratio(self) -> float:
        return self.measured_ms / self.summed_ms


@dataclass(frozen=True)
class Calibration:
    """The networks a table's ``scale`` was fitted on, and the share of networks it is meant to cover.

    ``coverage`` 0.5 fits the median measured/summed ratio (a point estimate); a higher coverage
    fits an upper prediction bound, so that about that share of networks run no slower than
    predicted (:func:`blockzoo.latency.measure.fit_scale`) — what a latency budget needs.
    """

    coverage: float
    points: tuple[CalibrationPoint, ...]

    @property
    def median_ratio(self) -> float:
        return statistics.median(p.ratio for p in self.points)

    def to_dict(self) -> dict[str, Any]:
        return {"coverage": self.coverage, "median_ratio": self.median_ratio,
                "architectures": [asdict(p) for p in self.points]}


def count_blocks(space: SearchSpace) -> int:
    """Candidate blocks of the space (every stage, every depth, every ratio tuple), without listing them."""
    per_stage = sum(len(space.expand_choices) ** d for d in space.depth_choices)
    return space.num_stages * per_stage


def part_shapes(space: SearchSpace, in_channels: int, batch_size: int) -> dict[str, list[int]]:
    """The input shape of every part: ``prefix``, ``s1`` ... ``s<M>`` (each stage's block), ``head``."""
    shapes = {"prefix": [batch_size, in_channels, space.input_size, space.input_size]}
    for stage in range(space.num_stages + 1):
        if stage == 0:
            channels, size = space.stem_channels, space.input_size
        else:
            channels, size = space.widths[stage - 1], space.output_size(stage - 1)
        shapes["head" if stage == space.num_stages else f"s{stage + 1}"] = [batch_size, channels, size, size]
    return shapes


class LatencyTable:
    """Measured latency (ms) of a space's prefix, head and candidate blocks on one device.

    ``lazy``: a missing block is measured on first use, on the machine the table was measured
    on (torch); otherwise a missing block is an error. Tables read for prediction only (the
    service) are not lazy.
    """

    def __init__(self, space: SearchSpace, in_channels: int, num_classes: int, *, batch_size: int = 1,
                 device: Any = "cpu", timing: Timing = Timing(), machine: Optional[str] = None,
                 prefix_ms: Optional[float] = None, head_ms: Optional[float] = None,
                 blocks: Optional[dict[BlockKey, float]] = None, scale: float = 1.0,
                 calibration: Optional[Calibration] = None, torch_version: Optional[str] = None,
                 created_at: Optional[str] = None, lazy: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.space = space
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.batch_size = batch_size
        self.device = str(device)
        self.timing = timing
        self.machine = machine  # None until the first measurement (measure.machine_description)
        self.prefix_ms = prefix_ms
        self.head_ms = head_ms
        self.blocks: dict[BlockKey, float] = dict(blocks or {})
        self.scale = scale  # measured / summed latency, fitted by calibrate(); 1 = plain sum
        self.calibration = calibration
        self.torch_version = torch_version
        self.created_at = created_at
        self.lazy = lazy

    # --- measuring (torch, in blockzoo.latency.measure) -----------------------------------------
    @classmethod
    def measure(cls, space: SearchSpace, in_channels: int, num_classes: int, *, batch_size: int = 1,
                device: Any = "cpu", timing: Timing = Timing(),
                blocks: Union[str, Iterable[BlockKey]] = "lazy", progress: Optional[ProgressFn] = None,
                should_stop: Optional[StopFn] = None) -> "LatencyTable":
        """A table for this machine: prefix, head and the smallest block of every stage now;
        further blocks: ``"lazy"`` (on first use), ``"all"`` (every block of every stage), or
        the given ``(stage, expand)`` pairs (:func:`blockzoo.latency.measure.measure_table`)."""
        from .measure import measure_table

        return measure_table(space, in_channels, num_classes, batch_size=batch_size, device=device,
                             timing=timing, blocks=blocks, progress=progress, should_stop=should_stop)

    @property
    def can_measure(self) -> bool:
        """True on the machine (and thread count) the table was measured on."""
        from .measure import can_measure

        return can_measure(self)

    def measure_blocks(self, keys: Iterable[BlockKey], progress: Optional[ProgressFn] = None,
                       should_stop: Optional[StopFn] = None) -> int:
        """Measure the given ``(stage, expand)`` blocks that the table lacks; returns the count."""
        missing = list(dict.fromkeys((m, tuple(e)) for m, e in keys if (m, tuple(e)) not in self.blocks))
        if missing:
            from .measure import measure_parts

            measure_parts(self, missing, progress, should_stop)
        return len(missing)

    def ensure(self, archs: Iterable[Architecture], progress: Optional[ProgressFn] = None,
               should_stop: Optional[StopFn] = None) -> int:
        """Measure the blocks ``archs`` need that the table lacks (lazy build in one go)."""
        return self.measure_blocks(((m, e) for a in archs for m, e in enumerate(a.expand)), progress,
                                   should_stop)

    def calibrate(self, archs: Sequence[Architecture], coverage: float = 0.5) -> float:
        """Fit ``scale`` on measured networks ``archs`` and return it (see :class:`Calibration`).

        A part timed alone has its kernels, weights and allocations to itself; inside a network
        it shares them with the other parts, so the plain sum is off by a roughly constant
        factor that depends on the device and batch size (``bench/results/latency.md``).
        Calibrate on architectures other than those you validate on.
        """
        from .measure import calibrate

        return calibrate(self, archs, coverage)

    # --- predicting --------------------------------------------------------------------------------
    def block_ms(self, stage: int, expand: Sequence[int]) -> float:
        """Latency of one candidate block (measured now if missing and the table is lazy)."""
        key = (stage, tuple(expand))
        if key not in self.blocks:
            self._missing([key])
        return self.blocks[key]

    def breakdown(self, arch: Union[Architecture, dict, str]) -> dict[str, float]:
        """Predicted latency per part: ``prefix``, ``s1:<code>`` ... ``s<M>:<code>``, ``head``."""
        arch = self.space.parse(arch)
        parts = {"prefix": self._fixed("prefix")}
        for m, expand in enumerate(arch.expand):
            parts[f"s{m + 1}:{block_code(expand)}"] = self.block_ms(m, expand)
        parts["head"] = self._fixed("head")
        return parts

    def predict(self, arch: Union[Architecture, dict, str]) -> float:
        """Predicted end-to-end latency (ms) of ``arch``: the sum of its parts, times ``scale``."""
        arch = self.space.parse(arch)
        total = self._fixed("prefix") + self._fixed("head")
        for m, expand in enumerate(arch.expand):
            total += self.block_ms(m, expand)
        return self.scale * total

    def fastest(self) -> Architecture:
        """The architecture with the lowest predicted latency: the fastest stored block of every stage.

        Latency is a sum over stages, so the per-stage minimum is the minimum over the space
        (exact for a complete table; for a partial one, over the stored blocks). Ties go to the
        smaller block. Often the space's smallest architecture, but not always: blocks of nearly
        equal latency are ordered by measurement noise.
        """
        expand = []
        for m in range(self.space.num_stages):
            stored = [(ms, len(e), e) for (s, e), ms in self.blocks.items() if s == m]
            if not stored:
                self._missing([(m, self.space.smallest.expand[m])])
                stored = [(self.blocks[(m, self.space.smallest.expand[m])], 0, self.space.smallest.expand[m])]
            expand.append(min(stored)[2])
        return Architecture(tuple(len(e) for e in expand), tuple(expand))

    def check_compatible(self, space: SearchSpace, in_channels: int, num_classes: int) -> None:
        """Refuse to predict for another space structure or input/output shape than the table's.

        Names, descriptions and dropout do not change latency; every other field of the space does.
        """
        if not same_structure(space, self.space) or in_channels != self.in_channels \
                or num_classes != self.num_classes:
            raise LatencyTableError(
                f"the latency table is for space '{self.space.name}' with {self.in_channels} input "
                f"channels and {self.num_classes} classes; got space '{space.name}', {in_channels} "
                f"channels, {num_classes} classes"
                + ("" if same_structure(space, self.space) else " (the spaces' structures differ)")
            )

    def missing_blocks(self) -> list[BlockKey]:
        """The candidate blocks of the space the table has no entry for (space order)."""
        return [(m, e) for m in range(self.space.num_stages) for e in self.space.stage_blocks(m)
                if (m, e) not in self.blocks]

    def check_complete(self) -> None:
        """Raise unless the table holds the prefix, the head and every candidate block of its space."""
        problems = [f"{part}_ms" for part in ("prefix", "head") if getattr(self, f"{part}_ms") is None]
        missing = self.missing_blocks()
        if missing:
            m, e = missing[0]
            problems.append(f"{len(missing)} of the {count_blocks(self.space)} candidate blocks (e.g. block "
                            f"'{block_code(e)}' of stage {m + 1})")
        if problems:
            raise LatencyTableError(
                f"the latency table of space '{self.space.name}' lacks " + " and ".join(problems)
                + ": measure every block with `blockzoo latency measure` (it measures the whole space)"
            )

    def shapes(self) -> dict[str, list[int]]:
        return part_shapes(self.space, self.in_channels, self.batch_size)

    def _fixed(self, part: str) -> float:
        if getattr(self, f"{part}_ms") is None:
            self._missing([part])
        return getattr(self, f"{part}_ms")

    def _missing(self, parts: list[Part]) -> None:
        if not self.lazy:
            raise LatencyTableError(
                f"{part_name(parts[0])} is not in the latency table; measure the whole space with "
                "`blockzoo latency measure` on the device that will run the networks"
            )
        from .measure import measure_parts

        measure_parts(self, parts)

    def __len__(self) -> int:
        return len(self.blocks)

    # --- persistence -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        blocks: dict[str, dict[str, float]] = {}
        for (m, expand), ms in sorted(self.blocks.items()):
            blocks.setdefault(f"s{m + 1}", {})[block_code(expand)] = ms
        return {
            "format": FORMAT, "version": TABLE_VERSION, "space": self.space.to_dict(),
            "in_channels": self.in_channels, "num_classes": self.num_classes, "batch_size": self.batch_size,
            "shapes": self.shapes(), "device": self.device, "machine": self.machine,
            "torch_version": self.torch_version, "created_at": self.created_at, "timing": self.timing.to_dict(),
            "unit": "ms", "scale": self.scale,
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "prefix_ms": self.prefix_ms, "head_ms": self.head_ms, "blocks": blocks,
        }

    @classmethod
    def from_dict(cls, data: Any, *, lazy: bool = True) -> "LatencyTable":
        """A table from its JSON form, checked field by field; :class:`LatencyTableError` says what is wrong."""
        return _read_table(data, lazy)

    @classmethod
    def from_json(cls, text: Union[str, bytes], *, lazy: bool = True) -> "LatencyTable":
        """A table from JSON text; NaN, infinities and non-JSON are refused (strict JSON)."""
        return cls.from_dict(parse_json(text), lazy=lazy)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    def save(self, path: Union[str, Path]) -> None:
        """Write the table as JSON, atomically (temp file + rename)."""
        write_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: Union[str, Path], *, lazy: bool = True) -> "LatencyTable":
        return cls.from_json(Path(path).read_bytes(), lazy=lazy)


def same_structure(a: SearchSpace, b: SearchSpace) -> bool:
    """True when networks of the two spaces are the same modules (names, descriptions, dropout aside)."""
    ignore = ("name", "description", "dropout")
    return {k: v for k, v in a.to_dict().items() if k not in ignore} == \
        {k: v for k, v in b.to_dict().items() if k not in ignore}


def part_name(part: Part) -> str:
    return part if isinstance(part, str) else f"block {block_code(part[1])} of stage {part[0] + 1}"


# --- reading untrusted tables ------------------------------------------------------------------------

def _reject_constant(name: str) -> Any:
    raise LatencyTableError(f"the table holds {name}, which is not a latency: every latency must be a "
                            "positive, finite number of milliseconds")


def parse_json(text: Union[str, bytes]) -> Any:
    """Strict JSON: no NaN / Infinity; a malformed or too deeply nested document is a LatencyTableError."""
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except LatencyTableError:
        raise
    except RecursionError:
        raise LatencyTableError("the table is not valid JSON: nested too deeply") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError, bad UTF-8, over-long integers
        raise LatencyTableError(f"the table is not valid JSON: {exc}") from None


_FIELDS = {"format", "version", "space", "in_channels", "num_classes", "batch_size", "shapes", "device",
           "machine", "torch_version", "created_at", "timing", "unit", "scale", "calibration", "prefix_ms",
           "head_ms", "blocks"}
_REQUIRED = ("version", "space", "in_channels", "num_classes", "batch_size", "device", "timing", "prefix_ms",
             "head_ms", "blocks")
_STAGE_KEY = re.compile(r"s([1-9][0-9]{0,3})")
_BASE36 = string.digits + string.ascii_lowercase
_SPACE_INTS = ("input_size", "stem_channels", "kernel_size", "head_channels")
_SPACE_INT_LISTS = ("widths", "strides", "depth_choices", "expand_choices")


def _latency(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise LatencyTableError(f"{where} must be a positive, finite number of milliseconds, got {value!r}")
    return float(value)


def _integer(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise LatencyTableError(f"{where} must be an integer between {low} and {high}, got {value!r}")
    return value


def _text(value: Any, where: str, limit: int, optional: bool = True) -> Optional[str]:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise LatencyTableError(f"{where} must be a string of at most {limit} characters")
    return value


def _block(space: SearchSpace, stage: int, code: Any) -> tuple[int, ...]:
    if not isinstance(code, str) or not code or any(c not in _BASE36 for c in code):
        raise LatencyTableError(f"blocks.s{stage + 1}: {code!r} is not a block code (one base-36 digit per layer)")
    expand = tuple(_BASE36.index(c) for c in code)
    if len(expand) not in space.depth_choices or any(e not in space.expand_choices for e in expand):
        raise LatencyTableError(
            f"blocks.s{stage + 1}: block '{code}' is not a candidate block of space '{space.name}' (depths "
            f"{list(space.depth_choices)}, expansion ratios {list(space.expand_choices)})"
        )
    return expand


def _read_table(data: Any, lazy: bool) -> LatencyTable:
    if not isinstance(data, dict):
        raise LatencyTableError("a latency table is a JSON object (write one with `blockzoo latency measure`)")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise LatencyTableError(f"unknown latency table field(s) {unknown[:10]}; known: {sorted(_FIELDS)}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise LatencyTableError(f"the latency table lacks the field(s) {missing}")
    if data.get("format", FORMAT) != FORMAT:
        raise LatencyTableError(f"format must be {FORMAT!r}, got {data.get('format')!r}")
    version = data["version"]
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise LatencyTableError(f"unsupported latency table version {version!r}; this BlockZoo reads versions "
                                f"{list(READABLE_VERSIONS)} (write one with `blockzoo latency measure`)")
    if data.get("unit", "ms") != "ms":
        raise LatencyTableError(f"unit must be 'ms', got {data.get('unit')!r}")
    if not isinstance(data["space"], dict):
        raise LatencyTableError("space must be the space's full definition (an object, as GET /v1/spaces/{name})")
    _check_space_types(data["space"])
    try:
        space = SearchSpace.from_dict(data["space"])
    except (ArchitectureError, TypeError, ValueError) as exc:
        raise LatencyTableError(f"invalid space definition: {exc}") from None
    if count_blocks(space) > MAX_BLOCKS or space.num_stages > 64:
        raise LatencyTableError(f"space '{space.name}' has {count_blocks(space):,} candidate blocks; a latency "
                                f"table holds at most {MAX_BLOCKS:,}")
    in_channels = _integer(data["in_channels"], "in_channels", 1, 4096)
    num_classes = _integer(data["num_classes"], "num_classes", 1, 1_000_000)
    batch_size = _integer(data["batch_size"], "batch_size", 1, 1_000_000)
    device = _text(data["device"], "device", 64, optional=False)
    timing_data = data["timing"]
    if not isinstance(timing_data, dict) or set(timing_data) - set(Timing.__dataclass_fields__):
        raise LatencyTableError(f"timing must be an object with fields {sorted(Timing.__dataclass_fields__)}")
    try:
        timing = Timing(**timing_data)
    except (TypeError, ValueError) as exc:
        raise LatencyTableError(f"invalid timing: {exc}") from None
    shapes = data.get("shapes")
    expected = part_shapes(space, in_channels, batch_size)
    if shapes is not None and shapes != expected:
        raise LatencyTableError(f"shapes do not fit space '{space.name}' with {in_channels} input channels at "
                                f"batch {batch_size}: expected {expected}")
    scale = _latency(data.get("scale", 1.0), "scale")
    blocks_data = data["blocks"]
    if not isinstance(blocks_data, dict):
        raise LatencyTableError("blocks must be an object: {\"s1\": {\"<block code>\": ms, ...}, ...}")
    blocks: dict[BlockKey, float] = {}
    for stage_key, entries in blocks_data.items():
        match = _STAGE_KEY.fullmatch(stage_key) if isinstance(stage_key, str) else None
        if match is None or int(match.group(1)) > space.num_stages:
            raise LatencyTableError(f"blocks: {str(stage_key)[:20]!r} is not a stage of space '{space.name}' "
                                    f"(s1 ... s{space.num_stages})")
        stage = int(match.group(1)) - 1
        if not isinstance(entries, dict):
            raise LatencyTableError(f"blocks.{stage_key} must be an object of block code -> ms")
        for code, ms in entries.items():
            blocks[(stage, _block(space, stage, code))] = _latency(ms, f"blocks.{stage_key}.{code}")
    return LatencyTable(
        space, in_channels, num_classes, batch_size=batch_size, device=device, timing=timing,
        machine=_text(data.get("machine"), "machine", 1000),
        prefix_ms=_latency(data["prefix_ms"], "prefix_ms"), head_ms=_latency(data["head_ms"], "head_ms"),
        blocks=blocks, scale=scale, calibration=_read_calibration(data.get("calibration"), space),
        torch_version=_text(data.get("torch_version"), "torch_version", 64),
        created_at=_text(data.get("created_at"), "created_at", 64), lazy=lazy,
    )


def _is_int(value: Any, high: int = 1_000_000) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= high


def _check_space_types(data: dict[str, Any]) -> None:
    """JSON types of a space definition (``SearchSpace`` checks values, not types)."""
    problems = [k for k in _SPACE_INTS if k in data and not _is_int(data[k])]
    problems += [k for k in _SPACE_INT_LISTS if k in data and not (
        isinstance(data[k], list) and len(data[k]) <= 64 and all(_is_int(v) for v in data[k]))]
    if "feature_channels" in data and data["feature_channels"] is not None and not _is_int(data["feature_channels"]):
        problems.append("feature_channels")
    if "activations" in data and not (isinstance(data["activations"], list)
                                      and all(isinstance(a, str) for a in data["activations"])):
        problems.append("activations")
    if "use_se" in data and not (isinstance(data["use_se"], list) and all(isinstance(v, bool) for v in data["use_se"])):
        problems.append("use_se")
    if "dropout" in data and (isinstance(data["dropout"], bool) or not isinstance(data["dropout"], (int, float))):
        problems.append("dropout")
    problems += [k for k in ("name", "description") if k in data and not (
        isinstance(data[k], str) and len(data[k]) <= 1000)]
    if problems:
        raise LatencyTableError(f"invalid space definition: wrong type or size of {problems} (integers, "
                                "lists of integers, strings and booleans as in GET /v1/spaces/{name})")


def _read_calibration(data: Any, space: SearchSpace) -> Optional[Calibration]:
    if data is None:
        return None
    if not isinstance(data, dict) or set(data) - {"coverage", "median_ratio", "architectures"}:
        raise LatencyTableError("calibration must be an object with coverage and architectures")
    coverage = data.get("coverage")
    if isinstance(coverage, bool) or not isinstance(coverage, (int, float)) or not 0 < coverage < 1:
        raise LatencyTableError(f"calibration.coverage must be a number in (0, 1), got {coverage!r}")
    items = data.get("architectures")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_CALIBRATION:
        raise LatencyTableError(f"calibration.architectures must be a list of 1 to {MAX_CALIBRATION} networks")
    points = []
    for index, item in enumerate(items):
        where = f"calibration.architectures[{index}]"
        if not isinstance(item, dict) or set(item) != {"arch_id", "summed_ms", "measured_ms"}:
            raise LatencyTableError(f"{where} must be an object with arch_id, summed_ms and measured_ms")
        try:
            arch_id = space.parse(_text(item["arch_id"], f"{where}.arch_id", 256, optional=False)).id
        except ArchitectureError as exc:
            raise LatencyTableError(f"{where}.arch_id: {exc}") from None
        points.append(CalibrationPoint(arch_id, _latency(item["summed_ms"], f"{where}.summed_ms"),
                                       _latency(item["measured_ms"], f"{where}.measured_ms")))
    return Calibration(float(coverage), tuple(points))
